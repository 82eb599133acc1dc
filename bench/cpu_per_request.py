"""The web process's CPU per request: bare DRF, task creation and heartbeats, side by side.

    python -m bench.cpu_per_request [--rounds 2] [--requests 2000]

A fast loop for work on the ratios of issue 6 (about a minute and a half): the benchmark's stack and
load generator, closed loop with 32 connections, no agents online while tasks are created (as in
`create_api`). Prints each endpoint's rate, its web server's CPU per request (user + system of the
server's processes, from psutil: the baseline's own gunicorn for bare DRF, as `make bench` serves it) and
the ratios to bare DRF. On this 2-core box the web process is the bottleneck of all
three, so the ratio of CPU per request is what the ratio of rates follows.
"""

import argparse
import time
from pathlib import Path

from . import httpload
from . import stack as stack_module
from .httpload import json_request

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    log_dir = ROOT / "var" / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stack_module.configure()
    stack_module.migrate(log_dir)
    import django

    django.setup()
    import psutil

    from .scenarios import Bench, Size

    stack = stack_module.Stack(log_dir)
    stack.start()
    try:
        bench = Bench(stack, Size.full())
        bench.setup()
        bench.reset()

        # Each web server's processes: a parent and its workers (the product's Uvicorn, WEB_CONCURRENCY
        # of them; the baseline's gunicorn, one sync worker per core, as `make bench` serves it).
        def processes(name):
            parent = psutil.Process(stack.children[name].pid)
            return [parent, *parent.children(recursive=True)]

        web_processes, baseline_processes = processes("web"), processes("baseline-web")

        def cpu_of(watched):
            return sum(t.user + t.system for t in (p.cpu_times() for p in watched))

        agents = bench.register_agents(200, max_concurrency=10, capability="hb")

        def bare(i):
            return bench.baseline_request("/baseline/rows", i)  # the bare-DRF figure of `make bench`

        def heartbeat(i):
            agent_id, token = agents[i % len(agents)]
            body = {"status": "online", "current_load": 0}
            return json_request("POST", f"/api/v1/agents/{agent_id}/heartbeat", body, token)

        def measure(name, make, port=bench.port, watched=web_processes):
            before, t0 = cpu_of(watched), time.monotonic()
            result = bench.run(
                httpload.closed_loop(port, make, total=args.requests, concurrency=32, deadline_s=120)
            )
            after, elapsed = cpu_of(watched), time.monotonic() - t0
            cpu = after - before
            print(
                f"  {name:10s} {result.rate:6.1f} req/s   web {100 * cpu / elapsed:5.1f} % of a core, "
                f"{1000 * cpu / max(result.ok, 1):.2f} ms CPU per request   errors {result.errors}",
                flush=True,
            )
            return result.rate

        for r in range(args.rounds):
            print(f"round {r + 1}:", flush=True)
            baseline = measure("bare DRF", bare, stack.baseline_port, baseline_processes)
            bench.sql("UPDATE agents_agent SET status = 'offline'")  # creation alone, as in create_api
            created = measure("create", bench.task_request)
            bench.sql("TRUNCATE tasks_task, tasks_taskevent")
            beats = measure("heartbeat", heartbeat)
            print(f"  ratios: create {created / baseline:.2f}, heartbeat {beats / baseline:.2f}", flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
