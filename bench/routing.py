"""`python -m bench.routing [--quick] [--cases slowdown] [--loads 0.8] [--strategies adaptive,fastest]
[--load-basis degraded] [--degraded-agent 2]`: the routing strategies against real loopback agents (issue 17).

Six agents (bench/routing_agents.py: latency medians 50/50/100/100/200/400 ms, log-normal, failure
rates 1/1/2/5/1/20 %, MAX_CONCURRENCY slots each) serve one capability. Three cases:

- `steady`: the fleet as above;
- `fast_failer`: agent 1 (a 50 ms one; agents count from 0, as their names do) also answers 503 at once
  half the time;
- `slowdown`: agent 0 (the other 50 ms one) turns 10 x slower for SLOW_SECONDS in the middle of the run (the
  issue's "minute", scaled with the run so the whole benchmark takes under 12 minutes).

`--degraded-agent N` makes agent N the one that degrades in both (a 100 ms agent, 2 or 3, carries 15 % of
the fleet's capacity where a 50 ms one carries 30 %).

Each case runs at 50 % and 80 % of the fleet's capacity as measured first (`measure_capacity`: what the
steady fleet completes per second when offered more than it can take; `--load-basis degraded` takes
the loads of fast_failer and slowdown as shares of what their fleet completes with its agent degraded
for a whole run, which every run measures and reports), Poisson arrivals for
RUN_SECONDS, once per strategy (round_robin, least_connections, fastest, adaptive) in the same run, with
the real worker (`make run`'s command) dispatching. Per run: completion time p50/p99
(created -> finished, all tasks; one not finished by the drain deadline counts as that long), success
rate after retries, retries per task, each agent's share of the calls, and an oscillation index (below)
beside the index that chance alone gives the same split and volume (`chance_oscillation`).
The circuit breaker's recovery time is scaled like the minute (30 s -> CIRCUIT_RECOVERY s); everything
else runs with the product's defaults (retries, backoff, the adaptive model's parameters).

Targets: adaptive's p99 at least 30 % below least_connections' in fast_failer and slowdown at 80 %, and
never more than 5 % above the best other strategy's in any case; no oscillation: its index at most 1.25 x
round_robin's, and at most 1.25 x what chance alone gives its own split.

Uses bench/stack.py's servers in a database of its own (orchestrator_bench_routing) and Redis db 7
(BENCH_DATABASE, BENCH_REDIS_DB to change); writes var/bench/routing.md and .json. `make bench` runs it
after the main benchmark and puts it in its report (`BENCH_ARGS=--no-routing` skips it).
"""

import argparse
import math
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import TARGETS_MISSED, pacing
from . import report as report_module
from . import stack as stack_module

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "routing.md"
CAPABILITY = "route-bench"
MEDIANS_MS = (50, 50, 100, 100, 200, 400)
FAILURE_RATES = (0.01, 0.01, 0.02, 0.05, 0.01, 0.20)
MAX_CONCURRENCY = 2
FAST_FAILER, SLOWED = 1, 0
STRATEGIES = ("round_robin", "least_connections", "fastest", "adaptive")
CASES = ("steady", "fast_failer", "slowdown")
LOADS = (0.5, 0.8)
MAX_RETRIES = 5
# The capacity's measurement: arrivals at OVERLOAD x nominal, counted from WARMUP s on.
OVERLOAD = 1.5
WARMUP = 3.0
CIRCUIT_RECOVERY = 5
WRITERS = 6
LOAD_BASES = ("steady", "degraded")


def comma_list(kind):
    """An argparse type: a comma-separated list of `kind`."""
    return lambda text: [kind(item) for item in text.split(",")]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per run (a smoke test)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--cases", type=comma_list(str), help=f"comma-separated, of {', '.join(CASES)} (default: all)"
    )
    parser.add_argument(
        "--loads", type=comma_list(float), help="comma-separated shares of the capacity (default: 0.5,0.8)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each block's strategies this many times, in turn, and pool each strategy's repeats"
        " (a 20 s run's p99 is its 8th-15th slowest task, and moves by a quarter from run to run)",
    )
    parser.add_argument(
        "--load-basis",
        choices=LOAD_BASES,
        default="steady",
        help="what the loads are shares of: the steady fleet's measured capacity (default), or, in the"
        " fast_failer and slowdown cases, the capacity their fleet keeps with its agent degraded",
    )
    parser.add_argument(
        "--degraded-agent",
        type=int,
        choices=range(len(MEDIANS_MS)),
        help=f"the agent that degrades in fast_failer and slowdown (default: {FAST_FAILER} and {SLOWED}, the"
        " 50 ms ones, each 30 %% of the fleet's capacity; 2 or 3, a 100 ms one, carries 15 %%)",
    )
    parser.add_argument(
        "--strategies",
        type=comma_list(str),
        help="comma-separated (default: all four; the targets are judged only when all four ran)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    for name, allowed in (("cases", CASES), ("strategies", STRATEGIES)):
        unknown = set(getattr(args, name) or ()) - set(allowed)
        if unknown:
            parser.error(f"--{name}: unknown {', '.join(sorted(unknown))}")
    return args


def fleet_capacity():
    """The fleet's nominal capacity: tasks per second with every slot busy for its median latency, with
    nothing else in the way (no dispatch hop, no result to write, no failures)."""
    return sum(MAX_CONCURRENCY * 1000 / median for median in MEDIANS_MS)


def throughput(finished, *, start, end):
    """Completions per second within [start, end] (seconds on the run's clock); `finished`: the
    completion time of each task that completed."""
    if end <= start:
        raise ValueError("an empty window")
    return sum(1 for at in finished if start <= at <= end) / (end - start)


# Each case with a degraded agent: the agent that degrades unless --degraded-agent says, and how.
INCIDENTS = {"fast_failer": (FAST_FAILER, "answering 503 half the time"), "slowdown": (SLOWED, "10 x slower")}


def degraded_agent(case, chosen=None):
    """The agent that degrades in `case`: `chosen` (--degraded-agent), or the case's own 50 ms agent."""
    return INCIDENTS[case][0] if chosen is None else chosen


def agent_profiles(case, *, slowed=False, degraded=None):
    """Each agent's behaviour in `case`; `degraded`: the agent that degrades, if not the case's own."""
    profiles = [
        {"median_ms": median, "failure": failure, "fast_503": 0.0, "slow": 1}
        for median, failure in zip(MEDIANS_MS, FAILURE_RATES, strict=True)
    ]
    if case == "fast_failer":
        profiles[degraded_agent(case, degraded)]["fast_503"] = 0.5
    if case == "slowdown" and slowed:
        profiles[degraded_agent(case, degraded)]["slow"] = 10
    return profiles


# --- Scoring (pure: tests/test_bench_routing.py) ----------------------------------------------------------


def percentile(values, p):
    """The nearest-rank percentile of `values` (None when empty)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


def oscillation(calls, agents):
    """How much the split of traffic between agents swings from one second to the next: the mean over
    consecutive seconds of half the summed absolute change of each agent's share (0: a steady split;
    1: all traffic moves to other agents every second). `calls`: (agent, second) pairs."""
    per_second = {}
    for agent, second in calls:
        per_second.setdefault(second, [0] * agents)[agent] += 1
    seconds = sorted(per_second)
    swings = []
    for before, after in zip(seconds, seconds[1:], strict=False):
        if after != before + 1:
            continue
        a, b = per_second[before], per_second[after]
        swings.append(0.5 * sum(abs(x / sum(a) - y / sum(b)) for x, y in zip(a, b, strict=True)))
    return round(sum(swings) / len(swings), 4) if swings else None


def chance_oscillation(calls, agents, *, shuffles=20, seed=0):
    """The oscillation index that chance alone gives a split with the same shares and the same calls per
    second: the mean index over `shuffles` reshuffles of which agent took which call (None when there is
    nothing to compare). A random choice (power of two choices) swings more from second to second than a
    rotation does just by being random; the index over this tells a real swing from that noise."""
    rng = random.Random(seed)
    seconds = [second for _, second in calls]
    takers = [agent for agent, _ in calls]
    indices = []
    for _ in range(shuffles):
        rng.shuffle(takers)
        index = oscillation(list(zip(takers, seconds, strict=True)), agents)
        if index is None:
            return None
        indices.append(index)
    return round(sum(indices) / len(indices), 4) if indices else None


def summarize(tasks, calls, *, agents, drain_seconds):
    """One run's figures. `tasks`: (completion seconds or None if unfinished, succeeded, attempts);
    `calls`: (agent, second, status)."""
    times = [drain_seconds if seconds is None else seconds for seconds, _, _ in tasks]
    counts = [0] * agents
    for agent, _, _ in calls:
        counts[agent] += 1
    total_calls = sum(counts) or 1
    timeline = [(agent, second) for agent, second, _ in calls]
    return {
        "tasks": len(tasks),
        "p50_ms": None if not times else round(percentile(times, 0.50) * 1000, 1),
        "p99_ms": None if not times else round(percentile(times, 0.99) * 1000, 1),
        "success_rate": round(sum(1 for _, ok, _ in tasks if ok) / len(tasks), 4) if tasks else None,
        "retries_per_task": round(sum(max(a - 1, 0) for _, _, a in tasks) / len(tasks), 3) if tasks else None,
        "unfinished": sum(1 for seconds, _, _ in tasks if seconds is None),
        "share": [round(n / total_calls, 3) for n in counts],
        "oscillation": oscillation(timeline, agents),
        "chance_oscillation": chance_oscillation(timeline, agents),
    }


def _verdict(case, load, check, met, detail):
    return {"case": case, "load": load, "check": check, "met": met, "detail": detail}


def offered_share(load, capacity, degraded_capacity):
    """What a load (a share of `capacity`, tasks/s) asks of a degraded fleet that completes
    `degraded_capacity` tasks/s, as words for a verdict ("" when either figure is missing)."""
    if not capacity or not degraded_capacity:
        return ""
    offered = load * capacity
    return (
        f"; offered {offered:.1f} tasks/s, {round(100 * offered / degraded_capacity)} % of the"
        f" {degraded_capacity} this fleet completes at its worst"
    )


def judge(results, *, capacity=None, degraded=None, basis="steady"):
    """The targets, per (case, load): [{case, load, check, met, detail}]. With the steady fleet's
    `capacity` and the `degraded` fleets' (degraded_capacities), the p99 verdicts also say how much of
    its degraded fleet's capacity the load asked for; `basis` is what the loads were shares of."""
    verdicts = []
    for case in CASES:
        for load in LOADS:
            runs = results.get(f"{case}@{int(load * 100)}")
            if not runs or any(runs.get(s, {}).get("p99_ms") is None for s in STRATEGIES):
                continue
            degraded_capacity = (degraded or {}).get(case)
            basis_capacity = degraded_capacity if basis == "degraded" else capacity
            offered = offered_share(load, basis_capacity, degraded_capacity)
            adaptive = runs["adaptive"]["p99_ms"]
            best_name = min((s for s in STRATEGIES if s != "adaptive"), key=lambda s: runs[s]["p99_ms"])
            best = runs[best_name]["p99_ms"]
            checks = [
                (
                    "p99 <= 1.05 x best other",
                    adaptive <= 1.05 * best,
                    f"adaptive {adaptive} ms vs {best_name} {best} ms{offered}",
                )
            ]
            if case in ("fast_failer", "slowdown") and load == 0.8:
                lc = runs["least_connections"]["p99_ms"]
                checks.append(
                    (
                        "p99 <= 0.70 x least_connections",
                        adaptive <= 0.70 * lc,
                        f"adaptive {adaptive} ms vs least_connections {lc} ms{offered}",
                    )
                )
            swings = runs["adaptive"]["oscillation"]
            steady, chance = runs["round_robin"]["oscillation"], runs["adaptive"].get("chance_oscillation")
            # No oscillation: adaptive's index against round_robin's, and against chance's for its split.
            for name, bound, against in (
                ("round_robin", steady, f"round_robin {steady}"),
                ("chance", chance, f"{chance} by chance"),
            ):
                if swings is not None and bound is not None:
                    checks.append(
                        (
                            f"oscillation <= 1.25 x {name}",
                            swings <= 1.25 * bound,
                            f"adaptive {swings} vs {against}",
                        )
                    )
            verdicts += [_verdict(case, load, *check) for check in checks]
    return verdicts


# --- Running -------------------------------------------------------------------------------------------


class Agents:
    """The loopback agent server and its control endpoints."""

    def __init__(self, log_dir, seed):
        self.child = stack_module.Child(
            "routing-agents",
            [sys.executable, "-m", "bench.routing_agents", "--port", "0", "--seed", str(seed)],
            log_dir,
        )
        deadline = time.monotonic() + 15
        while not hasattr(self, "port"):
            for line in self.child.output().splitlines():
                if line.startswith("port "):
                    self.port = int(line.split()[1])
            if time.monotonic() > deadline:
                raise RuntimeError(f"routing agents did not start:\n{self.child.output()[-3000:]}")
            time.sleep(0.05)

    def _call(self, method, path, body=None):
        import httpx

        response = httpx.request(method, f"http://127.0.0.1:{self.port}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def configure(self, profiles, *, restart_clock=False):
        self._call("POST", "/_bench/config", {"agents": profiles, "restart_clock": restart_clock})

    def calls(self):
        return self._call("GET", "/_bench/calls")["calls"]


def register(port):
    from agents.models import Agent
    from orchestrator_project.accounts.models import hash_token, new_raw_token

    Agent.objects.all().delete()
    return [
        Agent.objects.create(
            type="route-bench",
            name=f"agent-{index}-{median}ms",
            endpoint=f"http://127.0.0.1:{port}/r/{index}",
            capabilities=[CAPABILITY],
            max_concurrency=MAX_CONCURRENCY,
            token_hash=hash_token(new_raw_token("aoa_")),
            signing_secret="whsec_" + "A" * 32,
        )
        for index, median in enumerate(MEDIANS_MS)
    ]


def reset(agent_ids):
    """A clean slate between runs: no tasks, nothing learned, every agent idle and closed."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE tasks_task, tasks_taskevent CASCADE")
        cursor.execute("DELETE FROM agents_agentroute")
        cursor.execute(
            """UPDATE agents_agent SET current_load = 0, avg_latency_ms = NULL, success_rate = 1,
                   success_count = 0, failure_count = 0, consecutive_failures = 0, circuit_state = 'closed',
                   circuit_opened_at = NULL, circuit_retry_at = NULL, status = 'online',
                   drained_by_operator = false
               WHERE agent_id = ANY(%s)""",
            [agent_ids],
        )


def submit(*, rate, seconds, strategy, seed):
    """Poisson arrivals at `rate` per second for `seconds`, created by WRITERS threads on one schedule."""
    from django.db import connection

    from tasks import services

    rng = random.Random(seed)
    schedule, at = [], 0.0
    while True:
        at += rng.expovariate(rate)
        if at >= seconds:
            break
        schedule.append(at)
    data = {"type": "route-bench", "required_capabilities": [CAPABILITY], "strategy": strategy}
    data["max_retries"] = MAX_RETRIES
    pacing.run_schedule(
        schedule,
        lambda: services.create_task(data=dict(data)),
        threads=WRITERS,
        on_exit=lambda: connection.close(),
    )
    return len(schedule)


def collect(drain_seconds):
    """Wait for every task to end (up to the drain deadline); (seconds or None, succeeded, attempts)."""
    from tasks.models import Task, TaskStatus

    terminal = [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED]
    deadline = time.monotonic() + drain_seconds
    while Task.objects.exclude(status__in=terminal).exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the database for the drain: nothing to wait on across processes
    rows = Task.objects.values_list("status", "created_at", "finished_at", "attempts")
    return [
        (
            (finished - created).total_seconds() if status in terminal and finished else None,
            status == TaskStatus.COMPLETED,
            attempts,
        )
        for status, created, finished, attempts in rows
    ]


def measure_capacity(agents, agent_ids, *, seconds, seed, profiles=None):
    """What the steady fleet (or the fleet of `profiles`) really completes per second through this box's
    worker: tasks offered at OVERLOAD x its nominal capacity with least_connections (which leaves no free
    slot idle while tasks wait), counted once the queue has built (from WARMUP s) to the end of the
    arrivals. The loads are fractions of the steady fleet's (`load_capacity`): the nominal figure leaves
    out the dispatch hop and the result's write that every call adds (about a fifth of the nominal figure
    on a 2-core box)."""
    from tasks.models import Task, TaskStatus

    reset(agent_ids)
    agents.configure(profiles or agent_profiles("steady"), restart_clock=True)
    began = time.time()
    submit(rate=OVERLOAD * fleet_capacity(), seconds=seconds, strategy="least_connections", seed=seed)
    ended = time.time()
    collect(max(30.0, 2 * seconds))
    finished = Task.objects.filter(status=TaskStatus.COMPLETED).values_list("finished_at", flat=True)
    return throughput([at.timestamp() - began for at in finished], start=WARMUP, end=ended - began)


# The fleet at its worst in each case with a degraded agent: the fast failer all along; the slowed agent
# slowed (which it is for half of each run).
DEGRADED = {"fast_failer": {}, "slowdown": {"slowed": True}}


def degraded_how(case, chosen=None):
    return f"agent {degraded_agent(case, chosen)} {INCIDENTS[case][1]}"


def degraded_capacities(agents, agent_ids, cases, *, seconds, seed, degraded=None):
    """Per case with a degraded agent, what its fleet completes per second at its worst. Not a target:
    it says whether a load, a share of the steady fleet's capacity, is still a load for that fleet or
    already more than it can carry, when the queue and not the routing sets the p99."""
    return {
        case: round(
            measure_capacity(
                agents,
                agent_ids,
                seconds=seconds,
                seed=seed,
                profiles=agent_profiles(case, degraded=degraded, **DEGRADED[case]),
            ),
            1,
        )
        for case in cases
        if case in DEGRADED
    }


def load_capacity(results, case, basis):
    """The tasks/s a case's loads are shares of: the steady fleet's measured capacity, or with basis
    "degraded" the case's degraded fleet's, where it has one."""
    if basis == "degraded" and case in results.get("degraded_capacity", {}):
        return results["degraded_capacity"][case]
    return results["capacity"]


def run_one(agents, agent_ids, *, case, load, capacity, strategy, seconds, slow_window, seed, degraded=None):
    reset(agent_ids)
    agents.configure(agent_profiles(case, degraded=degraded), restart_clock=True)
    timers = []
    if case == "slowdown":
        start, end = slow_window
        timers = [
            threading.Timer(start, agents.configure, [agent_profiles(case, slowed=True, degraded=degraded)]),
            threading.Timer(end, agents.configure, [agent_profiles(case, degraded=degraded)]),
        ]
        for timer in timers:
            timer.start()
    created = submit(rate=load * capacity, seconds=seconds, strategy=strategy, seed=seed)
    for timer in timers:
        timer.join()
    drain = max(30.0, seconds)
    return Run(tasks=collect(drain), calls=agents.calls(), created=created, drain_seconds=drain)


@dataclass
class Run:
    """One run's raw figures: its tasks (completion seconds or None, succeeded, attempts), the agents'
    calls (agent, second of the run, status), how many tasks were created, its drain deadline."""

    tasks: list
    calls: list
    created: int
    drain_seconds: float


# Repeats' calls are told apart by their seconds: repeat r's second s counts as r * this + s, so the
# oscillation index never compares the last second of one repeat with the first of the next.
REPEAT_SECONDS = 100_000


def pooled(runs):
    """One summary of a strategy's repeats of a block: percentiles and rates over all their tasks,
    shares over all their calls, oscillation over each repeat's own seconds."""
    calls = [
        (agent, repeat * REPEAT_SECONDS + second, status)
        for repeat, run in enumerate(runs)
        for agent, second, status in run.calls
    ]
    tasks = [task for run in runs for task in run.tasks]
    summary = summarize(tasks, calls, agents=len(MEDIANS_MS), drain_seconds=runs[0].drain_seconds)
    summary["created"] = sum(run.created for run in runs)
    if len(runs) > 1:
        summary["repeats"] = len(runs)
    return summary


def _failover_sentence(attempts):
    if not attempts:
        return " Every retry waited its backoff (TASK_FAILOVER_ATTEMPTS 0)."
    return (
        f" A 503 on one of a task's first {attempts} attempt(s) sent it at once to an agent it had not"
        f" tried (TASK_FAILOVER_ATTEMPTS {attempts})."
    )


def report(results):
    lines = [
        "## Routing (bench/routing.py, its own database)",
        "",
        f"Measured {results['at']} on {os.cpu_count()} cores: {results['seconds']} s of Poisson arrivals per"
        f" run. The loads are fractions of the fleet's measured capacity, {results['capacity']} tasks/s"
        f" (the steady fleet offered {OVERLOAD} x its nominal {results['nominal_capacity']} tasks/s with"
        f" least_connections; {MAX_CONCURRENCY} slots per agent; medians"
        f" {'/'.join(map(str, MEDIANS_MS))} ms; failure rates"
        f" {'/'.join(str(round(f * 100)) for f in FAILURE_RATES)} %)."
        + (
            f" Each figure pools {results['repeats']} runs per strategy and block, the strategies taking"
            " turns (--repeat)."
            if results.get("repeats", 1) > 1
            else ""
        )
        + _failover_sentence(results.get("failover_attempts", 0)),
        "",
    ]
    degraded = results.get("degraded_capacity") or {}
    if degraded:
        lines += [
            "Measured the same way with the agent degraded for the whole run, the fleet completes "
            + " and ".join(
                f"{capacity} tasks/s in {case} ({degraded_how(case, results.get('degraded_agent'))})"
                for case, capacity in degraded.items()
            )
            + ". A load above that is more than the fleet can carry while the agent is degraded: then the"
            " queue, not the routing, sets the p99."
            + (
                f" **Here the loads of {' and '.join(degraded)} are fractions of those figures"
                " (--load-basis degraded), not of the steady fleet's.**"
                if results.get("load_basis") == "degraded"
                else ""
            ),
            "",
        ]
    return "\n".join(lines + tables(results, share="agent")) + "\n"


def tables(results, *, share):
    """The runs' table and the targets' table (Markdown lines), shares labelled per `share`."""
    lines = [
        "| Case | Load | Strategy | p50 ms | p99 ms | Success | Retries/task | Oscillation"
        f" | By chance | Share per {share} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, runs in results["runs"].items():
        case, load = key.split("@")
        for strategy in STRATEGIES:
            run = runs.get(strategy)
            if run is None:
                continue
            shares = " / ".join(f"{round(s * 100)}" for s in run["share"])
            lines.append(
                f"| {case} | {load} % | {strategy} | {run['p50_ms']} | {run['p99_ms']} |"
                f" {run['success_rate']} | {run['retries_per_task']} | {run['oscillation']} |"
                f" {run.get('chance_oscillation')} | {shares} % |"
            )
    lines += ["", "| Target | Case | Load | Met | Figures |", "| --- | --- | --- | --- | --- |"]
    for verdict in results["verdicts"]:
        lines.append(
            f"| {verdict['check']} | {verdict['case']} | {int(verdict['load'] * 100)} % |"
            f" {'yes' if verdict['met'] else '**NO**'} | {verdict['detail']} |"
        )
    return lines


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("BENCH_DATABASE", "orchestrator_bench_routing")
    os.environ.setdefault("BENCH_REDIS_DB", "7")
    log_dir = ROOT / "var" / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stack_module.configure()
    # The worker reads these too: no event sink (nothing here reads the stream) and the breaker's
    # recovery scaled like the scenario's minute.
    os.environ.update(
        {
            "EVENT_SINK": "none",
            "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": str(CIRCUIT_RECOVERY),
        }
    )
    stack_module.migrate(log_dir)
    import django

    django.setup()
    from django.conf import settings

    seconds = 6 if args.quick else 20
    slow_window = (seconds / 4, seconds / 4 + (3 if args.quick else 10))
    agents = Agents(log_dir, args.seed)
    port = stack_module.free_port()
    worker = None
    results = {
        "at": datetime.now().isoformat(timespec="seconds"),
        "seconds": seconds,
        "nominal_capacity": round(fleet_capacity(), 1),
        "load_basis": args.load_basis,
        "repeats": args.repeat,
        "failover_attempts": settings.TASK_FAILOVER_ATTEMPTS,
        "degraded_agent": args.degraded_agent,
        "runs": {},
    }
    try:
        agent_ids = [agent.agent_id for agent in register(agents.port)]
        worker = stack_module.start_worker(log_dir, port, name="routing-worker")
        capacity = measure_capacity(agents, agent_ids, seconds=6 if args.quick else 12, seed=args.seed)
        results["capacity"] = round(capacity, 1)
        print(f"bench.routing: measured capacity {capacity:.1f} tasks/s", flush=True)
        cases = args.cases or (("fast_failer",) if args.quick else CASES)
        results["degraded_capacity"] = degraded_capacities(
            agents,
            agent_ids,
            cases,
            seconds=6 if args.quick else 12,
            seed=args.seed,
            degraded=args.degraded_agent,
        )
        print(f"bench.routing: degraded fleets' capacity {results['degraded_capacity']}", flush=True)
        loads = args.loads or ((0.8,) if args.quick else LOADS)
        strategies = tuple(args.strategies or STRATEGIES)
        block = 0
        for case in cases:
            for load in loads:
                key = f"{case}@{int(load * 100)}"
                raw = {strategy: [] for strategy in strategies}
                block += 1
                for repeat in range(args.repeat):
                    # Each block and repeat starts with a different strategy, so the box's drift falls
                    # on all of them; within a repeat every strategy gets the same arrivals.
                    turn = (block - 1 + repeat) % len(strategies)
                    for strategy in strategies[turn:] + strategies[:turn]:
                        run = run_one(
                            agents,
                            agent_ids,
                            case=case,
                            load=load,
                            capacity=load_capacity(results, case, args.load_basis),
                            strategy=strategy,
                            seconds=seconds,
                            slow_window=slow_window,
                            seed=args.seed + block + 1000 * repeat,
                            degraded=args.degraded_agent,
                        )
                        raw[strategy].append(run)
                        print(f"bench.routing: {key} {strategy}: {pooled([run])}", flush=True)
                results["runs"][key] = {strategy: pooled(runs) for strategy, runs in raw.items()}
    finally:
        if worker is not None:
            worker.stop()
        agents.child.stop()
    results["verdicts"] = judge(
        results["runs"],
        capacity=results.get("capacity"),
        degraded=results.get("degraded_capacity"),
        basis=args.load_basis,
    )
    report_module.write_section(OUT, report(results), results)
    return 0 if all(v["met"] for v in results["verdicts"]) else TARGETS_MISSED


if __name__ == "__main__":
    sys.exit(main())
