"""`python -m bench.full_fleet [--agents 10000 --tasks 1000 --rate 200]`: what creations cost dispatch
while every agent is full.

During a backlog on a full fleet a new task can be placed no sooner than the tasks before it, yet each
creation's ring woke the dispatcher of every worker for a round (tasks/engine/wake.py). This measures
that: AGENTS online agents serving one capability with every slot taken and a backlog of pending tasks;
then TASKS tasks are created one per transaction (`services.create_task`, as the API creates them) at
RATE per second. A real Dispatcher and its Bell run in this process, as in a worker; a runner that only
records stands in for the agent calls (nothing can be placed anyway).

Reported: the dispatch rounds run while the tasks were created, their wall time and the dispatcher
thread's CPU time, the rings it skipped, and the CPU time of every Postgres process over the window
(the creations' own statements included, the same with and without rounds).

Runs in a database of its own (orchestrator_bench_full_fleet; BENCH_DATABASE to change) on the server
the benchmark uses. Writes var/bench/full_fleet.md and .json.
"""

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil

from . import report as report_module
from . import stack as stack_module

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "full_fleet.md"
CAPABILITY = "busy"
SLOTS = 4
BACKLOG = 1000


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=10_000, help="agents in the fleet, all full")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks created while measuring")
    parser.add_argument("--rate", type=float, default=200, help="creations per second")
    return parser.parse_args(argv)


def full_fleet(size):
    """`size` online agents, every slot taken, and a backlog none of them can take yet."""
    from django.db import connection
    from django.utils import timezone

    from agents.models import Agent
    from orchestrator_project.accounts.models import hash_token, new_raw_token
    from tasks.models import Task

    now = timezone.now()
    Agent.objects.bulk_create(
        Agent(
            type="bench",
            name=f"agent {n}",
            endpoint=f"http://127.0.0.1:1/{n}",
            capabilities=[CAPABILITY],
            max_concurrency=SLOTS,
            current_load=SLOTS,
            token_hash=hash_token(new_raw_token("aoa_")),
            signing_secret="whsec_bench",
            last_heartbeat=now,
        )
        for n in range(size)
    )
    Task.objects.bulk_create(
        Task(type="t", required_capabilities=[CAPABILITY], next_attempt_at=now) for _ in range(BACKLOG)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE agents_agent, tasks_task")


class _Runner:
    accepting = True

    def __init__(self):
        self.submitted = 0

    def submit(self, specs):
        self.submitted += len(specs)
        return len(specs)


def _timed_dispatcher():
    from tasks.engine.dispatcher import Dispatcher

    class TimedDispatcher(Dispatcher):
        """Counts its rounds' wall and CPU time (run on its own thread, so thread_time is its own)."""

        wall = cpu = 0.0
        timed_rounds = 0

        def dispatch_rounds(self, *args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return super().dispatch_rounds(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.thread_time() - cpu
                self.timed_rounds += 1

    return TimedDispatcher(_Runner())


def _postgres_cpu_seconds():
    """Every Postgres process's CPU seconds: each postmaster's, with its backends'."""
    postmasters = [
        proc
        for proc in psutil.process_iter(["name", "ppid"])
        if (proc.info["name"] or "").startswith("postgres") and not _named_postgres(proc.info["ppid"])
    ]
    return sum(stack_module.tree_cpu_seconds(proc) for proc in postmasters)


def _named_postgres(pid):
    try:
        return psutil.Process(pid).name().startswith("postgres")
    except psutil.Error:
        return False


def _wait_until(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the dispatcher did not settle")
        time.sleep(0.05)


def measure(args):
    from django.db import connection

    from tasks import services
    from tasks.engine import wake
    from tasks.serializers import TaskCreateSerializer

    full_fleet(args.agents)
    dispatcher = _timed_dispatcher()
    bell = wake.Bell(dispatcher)
    dispatcher.start()
    bell.start()
    # The bell kicks once when it listens: that round finds the fleet full.
    _wait_until(lambda: bell.backend_pid is not None and dispatcher.timed_rounds >= 1)
    time.sleep(0.5)  # any round of the start-up still running ends
    dispatcher.wall = dispatcher.cpu = 0.0
    dispatcher.timed_rounds = 0
    skipped_before = getattr(dispatcher, "new_work_skipped", 0)
    serializer = TaskCreateSerializer(data={"type": "t", "required_capabilities": [CAPABILITY]})
    serializer.is_valid(raise_exception=True)
    body = serializer.validated_data
    postgres_before = _postgres_cpu_seconds()
    started = time.perf_counter()
    for n in range(args.tasks):
        services.create_task(data=dict(body))
        pause = started + (n + 1) / args.rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.perf_counter() - started
    time.sleep(1.0)  # the last rings arrive and their rounds end
    postgres = _postgres_cpu_seconds() - postgres_before
    bell.stop()
    dispatcher.stop()
    bell.join(5)
    dispatcher.join(5)
    connection.close()
    return {
        "agents": args.agents,
        "tasks": args.tasks,
        "rate": args.rate,
        "seconds": round(elapsed, 2),
        "rounds": dispatcher.timed_rounds,
        "round_wall_ms": round(dispatcher.wall * 1000, 1),
        "dispatcher_cpu_ms": round(dispatcher.cpu * 1000, 1),
        "rings_skipped": getattr(dispatcher, "new_work_skipped", 0) - skipped_before,
        "postgres_cpu_ms": round(postgres * 1000, 1),
        "placed": dispatcher.runner.submitted,
    }


def report(result):
    per_task = {key: round(result[key] / result["tasks"], 3) for key in ("round_wall_ms", "postgres_cpu_ms")}
    return "\n".join(
        [
            "## Creations on a full fleet (bench/full_fleet.py)",
            "",
            f"Measured {result['at']}: {result['agents']:,} agents of {SLOTS} slots, all full, {BACKLOG:,}"
            f" pending; {result['tasks']:,} tasks created one at a time at {result['rate']:g}/s.",
            "",
            "| Rounds run | Rings skipped | Rounds' wall ms | Dispatcher CPU ms | Postgres CPU ms |"
            " Per creation: rounds ms / Postgres ms |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {result['rounds']} | {result['rings_skipped']} | {result['round_wall_ms']} |"
            f" {result['dispatcher_cpu_ms']} | {result['postgres_cpu_ms']} |"
            f" {per_task['round_wall_ms']} / {per_task['postgres_cpu_ms']} |",
            "",
        ]
    )


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    log_dir = ROOT / "var" / "bench" / "logs" / "full_fleet"
    stack_module.own_database("orchestrator_bench_full_fleet", log_dir)
    result = {"at": datetime.now().isoformat(timespec="seconds"), **measure(args)}
    report_module.write_section(OUT, report(result), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
