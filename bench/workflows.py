"""`python -m bench.workflows [--quick]`: the workflow engine's figures of issue 15, against the real stack.

The stack is what `make run` starts (web, worker, beat, relay: bench/stack.py) with the fast fake agents
of bench/agent_server.py, on a database of its own (orchestrator_bench_workflows; BENCH_DATABASE to
change). Everything goes through the API, as a client would.

1. **Step-to-step overhead.** Runs of a 5-step chain (each step's input is the previous step's output)
   are started at a steady 50 per second. For each of a run's 4 hand-overs: the previous step's
   completion as the engine recorded it (its `finished_at`, stamped when the task's result is applied)
   -> the next step's agent receiving its call (the agent's clock; same machine). Targets: p50 <= 20 ms,
   p99 <= 100 ms. Also shown: the whole hop, agent received step k -> agent received step k+1, which
   adds the agent's answer and the result's write.
2. **A map vs independent tasks.** A workflow whose one map step fans out over 1,000 items
   (max_concurrency 1,000), against 1,000 tasks created by one `POST /api/v1/tasks/bulk`, side by side:
   rounds alternate A B B A so the box's drift falls on both. Each round runs from the request to its
   last task's end (the run's end for the map). Ratio of the medians; target <= 1.5.

Writes var/bench/workflows.md and .json; `python -m bench.run` runs it after the main benchmark and puts
it in its report (`--no-workflows` skips it).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil

from . import TARGETS_MISSED, httpload, profiling
from . import report as report_module
from . import stack as stack_module
from .httpload import json_request, percentiles_ms

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "workflows.md"
PROFILE_DIR = ROOT / "var" / "bench" / "profiles"
CHAIN_STEPS = 5
CHAIN_RATE = 50  # runs per second
CAPABILITY = "bench"
PARTS = {
    "to_created": "step completed -> next task created",
    "created_to_assigned": "task created -> claimed by a dispatch round",
    "assigned_to_received": "claimed -> the agent receives the call",
}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy web and worker during the chain and the map rounds (var/bench/profiles)",
    )
    parser.add_argument("--skip-chain", action="store_true", help="only the map against the bulk API")
    parser.add_argument("--skip-map", action="store_true", help="only the chain")
    return parser.parse_args(argv)


class WorkflowStack(stack_module.Stack):
    """`make run`'s processes and the agents; none of the main benchmark's baselines."""

    def start_baseline(self):
        pass


def cpu_seconds(stack):
    """CPU seconds (user + system) spent so far by each of the stack's processes, its children
    included, and by the Postgres backends connected to the benchmark's database."""
    spent = {
        name: stack_module.tree_cpu_seconds(psutil.Process(child.pid))
        for name, child in stack.children.items()
    }
    database = os.environ["BENCH_DATABASE"]
    spent["postgres"] = 0.0
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        # A backend's title: "postgres: <user> <database> <client> <state>"
        if proc.info["name"] == "postgres" and database in " ".join(proc.info["cmdline"] or ()):
            spent["postgres"] += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return spent


def chain_spec():
    steps = [{"id": "s1", "task_type": CAPABILITY, "input": {"n": {"$path": "$.input.n"}}}]
    for k in range(2, CHAIN_STEPS + 1):
        steps.append(
            {
                "id": f"s{k}",
                "depends_on": [f"s{k - 1}"],
                "task_type": CAPABILITY,
                "input": {"previous": {"$path": f"$.steps.s{k - 1}.output"}},
            }
        )
    return {"defaults": {"timeout_seconds": 60, "max_retries": 3}, "steps": steps}


def map_spec():
    return {
        "steps": [
            {
                "id": "fan",
                "type": "map",
                "task_type": CAPABILITY,
                "over": {"$path": "$.input.items"},
                "max_concurrency": 1000,
                "input": {"n": {"$path": "$.item"}},
            }
        ]
    }


class WorkflowBench:
    def __init__(self, stack):
        from .scenarios import Bench, Size

        # The main benchmark's helpers: its token, agent registration through the API, the agents'
        # receive times, SQL.
        self.bench = Bench(stack, Size.quick())
        self.port = stack.port
        self.stack = stack
        self.phases = {}  # "map" / "bulk" -> [(to first claim, claims to last end, to the end) s]

    def setup(self):
        from django.contrib.auth import get_user_model

        from orchestrator_project.accounts.models import ApiToken

        password = os.urandom(16).hex()
        user = get_user_model().objects.create_superuser("bench", "bench@example.invalid", password)
        _, self.bench.token = ApiToken.issue(user=user, name="bench")
        # Enough slots that agents are never the bottleneck: 20 x 50 = 1,000 calls in flight at most.
        self.bench.register_agents(20, max_concurrency=50, capability=CAPABILITY)
        for name, spec in (("chain5", chain_spec()), ("map", map_spec())):
            status, body = self.call("POST", "/api/v1/workflows", {"name": name, "spec": spec})
            if status != 201:
                raise RuntimeError(f"creating workflow {name}: {status} {body}")

    def call(self, method, path, payload=None):
        return self.bench.run(httpload.call(self.port, method, path, payload, self.bench.token))

    def sql(self, statement, params=None):
        return self.bench.sql(statement, params)

    def reset(self):
        """No runs, steps or tasks left from the last phase (the agents stay registered)."""
        self.sql(
            "TRUNCATE tasks_task, tasks_taskevent, workflows_workflowrun, workflows_steprun,"
            " workflows_workflowevent"
        )
        self.bench.received()

    def wait_runs(self, expected, timeout):
        """Until `expected` runs have ended; returns (completed, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while True:
            done, bad = self.sql(
                "SELECT count(*) FILTER (WHERE status = 'completed'),"
                " count(*) FILTER (WHERE status IN ('failed', 'cancelled')) FROM workflows_workflowrun"
            )[0]
            if done + bad >= expected or time.monotonic() > deadline:
                return done, bad
            time.sleep(0.05)

    # --- 1. step-to-step overhead -----------------------------------------------------------------------

    def start_chains(self, *, rate, total):
        def make(i):
            return json_request(
                "POST", "/api/v1/workflow-runs", {"workflow": "chain5", "input": {"n": i}}, self.bench.token
            )

        return self.bench.run(
            httpload.open_loop(self.port, make, rate=rate, total=total, deadline_s=total / rate + 60)
        )

    def chain_overhead(self, *, seconds):
        self.reset()
        self.start_chains(rate=10, total=20)  # warm-up: every process's first runs pay for caches
        self.wait_runs(20, timeout=60)
        self.reset()
        total = int(CHAIN_RATE * seconds)
        cpu_before = cpu_seconds(self.stack)
        started = self.start_chains(rate=CHAIN_RATE, total=total)
        completed, failed = self.wait_runs(started.ok, timeout=120)
        cpu_used = {
            name: spent - cpu_before.get(name, 0.0) for name, spent in cpu_seconds(self.stack).items()
        }
        received = {}
        for task_id, at in self.bench.received():
            received.setdefault(task_id, at)
        rows = self.sql(
            "SELECT run_id::text, step_id, extract(epoch FROM finished_at), task_id::text"
            " FROM workflows_steprun WHERE map_index = -1"
        )
        steps = {(run_id, step_id): (finished, task_id) for run_id, step_id, finished, task_id in rows}
        # Where a hand-over's time goes: the next task's creation (the engine, in the result's
        # transaction), its claim by a dispatch round, and the call going out to the agent.
        created, assigned = {}, {}
        for task_id, created_at, assigned_at in self.sql(
            "SELECT t.task_id::text, extract(epoch FROM t.created_at), extract(epoch FROM min(e.created_at))"
            " FROM tasks_task t LEFT JOIN tasks_taskevent e ON e.task_id = t.task_id AND e.kind = 'assigned'"
            " GROUP BY t.task_id"
        ):
            created[task_id] = float(created_at)
            if assigned_at is not None:
                assigned[task_id] = float(assigned_at)
        parts = {"to_created": [], "created_to_assigned": [], "assigned_to_received": []}
        handover, hop = [], []
        for (run_id, step_id), (finished, task_id) in steps.items():
            k = int(step_id[1:])
            if k == CHAIN_STEPS or finished is None:
                continue
            _, next_task = steps.get((run_id, f"s{k + 1}"), (None, None))
            if next_task in received:
                handover.append(received[next_task] - float(finished))
                if next_task in assigned:
                    parts["to_created"].append(created[next_task] - float(finished))
                    parts["created_to_assigned"].append(assigned[next_task] - created[next_task])
                    parts["assigned_to_received"].append(received[next_task] - assigned[next_task])
                if task_id in received:
                    hop.append(received[next_task] - received[task_id])
        durations = [
            float(seconds)
            for (seconds,) in self.sql(
                "SELECT extract(epoch FROM finished_at - created_at) FROM workflows_workflowrun"
                " WHERE status = 'completed'"
            )
        ]
        overhead = percentiles_ms(handover)
        met = (
            overhead["p50_ms"] is not None
            and overhead["p50_ms"] <= 20
            and overhead["p99_ms"] <= 100
            and failed == 0
            and started.rate >= 0.95 * CHAIN_RATE
        )
        return {
            "runs_offered_per_s": CHAIN_RATE,
            "runs_started_per_s": round(started.rate, 1),
            "runs": started.ok,
            "start_errors": started.errors,
            "runs_completed": completed,
            "runs_failed": failed,
            "handover": overhead,
            "hop": percentiles_ms(hop),
            "handover_parts": {name: percentiles_ms(values) for name, values in parts.items()},
            "run_duration": percentiles_ms(durations),
            # Less at the mercy of this box's drift than the latencies: what each run cost each process.
            "cpu_ms_per_run": {
                name: round(1000 * spent / max(completed, 1), 2) for name, spent in cpu_used.items()
            },
            "start_request": started.summary(),
            "target": "handover p50 <= 20 ms, p99 <= 100 ms",
            "met": met,
        }

    # --- 2. a map vs independent tasks ------------------------------------------------------------------

    def bulk_round(self, items):
        self.reset()
        payload = {"tasks": [{"type": CAPABILITY, "input_data": {"n": k}} for k in range(items)]}
        t0 = time.time()
        status, body = self.call("POST", "/api/v1/tasks/bulk", payload)
        if status != 201:
            raise RuntimeError(f"bulk create: {status} {str(body)[:300]}")
        done, failed, last = self.bench.wait_terminal(items, timeout=120)
        if done < items or failed:
            raise RuntimeError(f"bulk round: {done}/{items} ended, {failed} failed")
        self._phases("bulk", t0, last)
        return last - t0

    def _phases(self, kind, t0, end):
        """Where a round's time went: request -> first task claimed (the creation committed), -> the
        last task ended, -> the round's end (the run's end, for the map)."""
        first_claim, last_task = self.sql(
            "SELECT extract(epoch FROM (SELECT min(created_at) FROM tasks_taskevent"
            " WHERE kind = 'assigned')), extract(epoch FROM (SELECT max(finished_at) FROM tasks_task))"
        )[0]
        self.phases.setdefault(kind, []).append(
            (float(first_claim) - t0, float(last_task) - float(first_claim), end - float(last_task))
        )

    def map_round(self, items):
        self.reset()
        payload = {"workflow": "map", "input": {"items": list(range(items))}}
        t0 = time.time()
        status, body = self.call("POST", "/api/v1/workflow-runs", payload)
        if status != 201:
            raise RuntimeError(f"map run: {status} {str(body)[:300]}")
        completed, failed = self.wait_runs(1, timeout=120)
        if completed != 1:
            raise RuntimeError(f"the map run did not complete ({failed} failed)")
        (finished,) = self.sql("SELECT extract(epoch FROM finished_at) FROM workflows_workflowrun")[0]
        self._phases("map", t0, float(finished))
        return float(finished) - t0

    def map_vs_bulk(self, *, items, rounds, profile=False):
        self.map_round(min(items, 100))  # warm-up of both paths
        self.bulk_round(min(items, 100))
        self.phases = {}
        order = ["bulk", "map", "map", "bulk"]
        seconds = {"bulk": [], "map": []}
        for r in range(rounds):
            kind = order[r % len(order)]
            profilers = profiling.start(self.stack, f"workflow_{kind}{r}", PROFILE_DIR) if profile else []
            try:
                seconds[kind].append(self.map_round(items) if kind == "map" else self.bulk_round(items))
            finally:
                profiling.stop(profilers)
            print(f"bench.workflows: {kind} of {items}: {seconds[kind][-1]:.2f} s", flush=True)
        mapped, bulk = statistics.median(seconds["map"]), statistics.median(seconds["bulk"])
        return {
            "items": items,
            "rounds": rounds,
            "map_s": [round(s, 3) for s in seconds["map"]],
            "bulk_s": [round(s, 3) for s in seconds["bulk"]],
            "map_median_s": round(mapped, 3),
            "bulk_median_s": round(bulk, 3),
            "ratio": round(mapped / bulk, 3),
            # Medians of each phase: request -> first claim, -> last task ended, -> the round's end.
            "phases_s": {
                kind: [round(statistics.median(p[i] for p in phases), 3) for i in range(3)]
                for kind, phases in self.phases.items()
            },
            "target": "<= 1.5",
            "met": mapped / bulk <= 1.5,
        }


def _met(flag):
    return "met" if flag else "NOT met"


def report(results):
    chain, side = results["chain"], results["map_vs_bulk"]
    handover, hop, duration = chain["handover"], chain["hop"], chain["run_duration"]
    return "\n".join(
        [
            "## Workflows (bench/workflows.py, its own database)",
            "",
            f"Measured {results['at']} on {os.cpu_count()} cores (load average {results['loadavg']} at the"
            " start), against web, worker, beat and relay as `make run` starts them.",
            "",
            "| Figure | Value | Target |",
            "| --- | --- | --- |",
            f"| Step-to-step overhead, {CHAIN_STEPS}-step chain at {chain['runs_started_per_s']} runs/s"
            f" ({handover['samples']} hand-overs of {chain['runs']} runs): previous step completed -> next"
            f" step's agent receives the call | p50 **{handover['p50_ms']} ms**, p95 {handover['p95_ms']}"
            f" ms, p99 **{handover['p99_ms']} ms**, max {handover['max_ms']} ms | p50 <= 20 ms, p99 <= 100"
            f" ms ({_met(chain['met'])}) |",
            f"| The whole hop: agent received step k -> agent received step k+1 | p50 {hop['p50_ms']} ms,"
            f" p99 {hop['p99_ms']} ms | |",
            *(
                f"| - of the hand-over: {label} | p50 {chain['handover_parts'][key]['p50_ms']} ms,"
                f" p99 {chain['handover_parts'][key]['p99_ms']} ms | |"
                for key, label in PARTS.items()
            ),
            f"| A run of the chain, start to end ({chain['runs_completed']} completed,"
            f" {chain['runs_failed']} failed) | p50 {duration['p50_ms']} ms, p99 {duration['p99_ms']} ms | |",
            "| CPU per run of the chain (user + system) | "
            + ", ".join(f"{name} {ms} ms" for name, ms in chain.get("cpu_ms_per_run", {}).items())
            + " | |",
            f"| A {side['items']}-item map vs {side['items']} tasks in one bulk request (medians of"
            f" {len(side['map_s'])} and {len(side['bulk_s'])} rounds, A B B A) | {side['map_median_s']} s vs"
            f" {side['bulk_median_s']} s: **{side['ratio']}x** | <= 1.5x ({_met(side['met'])}) |",
            *(
                f"| - {kind}: request -> first task claimed / -> last task ended / -> the end"
                f" | {' / '.join(f'{v} s' for v in side['phases_s'][kind])} | |"
                for kind in ("map", "bulk")
                if kind in side.get("phases_s", {})
            ),
            "",
        ]
    )


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    log_dir = ROOT / "var" / "bench" / "logs" / "workflows"
    stack_module.own_database("orchestrator_bench_workflows", log_dir)
    chain_seconds, items, rounds = (2, 200, 2) if args.quick else (20, 1000, 6)
    stack = WorkflowStack(log_dir)
    results = {
        "at": datetime.now().isoformat(timespec="seconds"),
        "loadavg": round(os.getloadavg()[0], 2),
        "quick": args.quick,
    }
    try:
        stack.start()
        runner = WorkflowBench(stack)
        runner.setup()
        if not args.skip_chain:
            print(f"bench.workflows: a {CHAIN_STEPS}-step chain at {CHAIN_RATE} runs/s...", flush=True)
            profilers = profiling.start(stack, "workflow_chain", PROFILE_DIR) if args.profile else []
            try:
                results["chain"] = runner.chain_overhead(seconds=chain_seconds)
            finally:
                if profilers:
                    results["profiles"] = profiling.stop(profilers)
            print(f"bench.workflows: {results['chain']}", flush=True)
        if not args.skip_map:
            results["map_vs_bulk"] = runner.map_vs_bulk(items=items, rounds=rounds, profile=args.profile)
            print(f"bench.workflows: {results['map_vs_bulk']}", flush=True)
    finally:
        stack.stop()
    if args.skip_chain or args.skip_map:  # a look at one part alone: no report
        return 0
    report_module.write_section(OUT, report(results), results)
    return 0 if results["chain"]["met"] and results["map_vs_bulk"]["met"] else TARGETS_MISSED


if __name__ == "__main__":
    sys.exit(main())
