"""`python -m bench.routing_sim [--agents 1000] [--seeds 17,18] [--capacity-share 0.74]`: a seeded,
discrete-event simulation of the routing benchmark's fleet (bench/routing.py), cheap enough for large
fleets.

The fleet is the benchmark's six behaviours repeated (agent i has behaviour i mod 6; in `fast_failer` every
agent of behaviour 1 also answers 503 at once half the time, in `slowdown` every agent of behaviour 0 is
10 x slower for the middle of the run). Tasks arrive as a Poisson stream at a share of the fleet's
capacity. Choices are made by the product's own strategy classes (tasks/engine/strategies.py) on the
product's Candidate objects; what `adaptive` learns is folded with agents/routing.py's `fold` (the Python
twin of the SQL the release runs), and `fastest`'s moving averages as agents/capacity.py moves them.
Retries back off as the product does and avoid agents already tried; with TASK_FAILOVER_ATTEMPTS set, a
503 on a task's first attempt(s) fails over at once, as tasks/engine/outcomes.py does.

Not simulated: the circuit breaker and the database. The dispatcher's own delay is one fixed gap per
call (--dispatch-gap-ms, none by default): a slot is held that long past the agent's answer, and a task
that finds a free slot is placed at once. The real-HTTP benchmark is the one that counts; this shows how
the strategies scale with the fleet. Writes var/bench/routing-sim.md and .json.
"""

import argparse
import heapq
import math
import os
import random
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import report as report_module
from .routing import comma_list

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "routing-sim.md"


def _setup_django():
    # The strategies read their parameters from the settings; nothing here touches a server, so the URLs
    # only keep the settings from starting the embedded ones.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_project.settings")
    os.environ.setdefault("DATABASE_URL", "postgres://sim@127.0.0.1:9/sim")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:9/0")
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()


class Task:
    __slots__ = (
        "task_id",
        "created",
        "attempts",
        "avoid_agents",
        "failover_until",
        "required_capabilities",
        "strategy",
    )

    def __init__(self, created, strategy):
        self.task_id = None
        self.created = created
        self.attempts = 0
        self.avoid_agents = []
        self.failover_until = None  # simulated seconds
        self.required_capabilities = ["sim"]
        self.strategy = strategy


def simulate(
    *, agents, case, load, strategy_name, seconds, seed, slots=2, max_retries=5, window=None, gap_ms=0.0
):
    """One run; returns its summary (bench.routing.summarize's figures, shares per behaviour).

    window: how many agents a dispatch round sees, drawn uniformly (the product's
    ROUTING_CANDIDATE_SAMPLE; None for its setting). gap_ms: how much longer than its call each call
    holds its slot (the real stack's write of the outcome, release of the slot and next round)."""
    from django.conf import settings

    from agents import routing as model
    from bench.routing import FAILURE_RATES, MEDIANS_MS, summarize
    from tasks.engine.claim import ROUND_SPARE_TASKS, Candidate
    from tasks.engine.strategies import STRATEGIES

    window = settings.ROUTING_CANDIDATE_SAMPLE if window is None else window
    rng = random.Random(seed)
    random.seed(seed)  # the strategies' own draws (power of two choices, exploration)
    strategy = STRATEGIES[strategy_name]
    # A clock of its own per run: the strategies cache per round (their clock), and runs must not share.
    base = datetime.now(UTC)
    behaviours = len(MEDIANS_MS)
    fleet = [
        Candidate(uuid.UUID(int=i + 1), frozenset(["sim"]), 0, slots, 1, None, 1.0, False)
        for i in range(agents)
    ]
    index_of = {c.agent_id: i for i, c in enumerate(fleet)}
    capacity = sum(slots * 1000 / MEDIANS_MS[i % behaviours] for i in range(agents))
    rate = load * capacity
    slow_from, slow_until = seconds / 4, seconds / 4 + seconds / 2

    def call(i, at):
        """(duration s, ok, refused: a 503) of a call to agent i starting at `at`."""
        kind = i % behaviours
        if case == "fast_failer" and kind == 1 and rng.random() < 0.5:
            return 0.002, False, True
        median = MEDIANS_MS[kind] / 1000
        if case == "slowdown" and kind == 0 and slow_from <= at < slow_until:
            median *= 10
        duration = median * math.exp(rng.gauss(0, 0.25))
        return duration, rng.random() >= FAILURE_RATES[kind], False

    events, sequence = [], 0

    def push(at, kind, payload):
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (at, sequence, kind, payload))

    at = 0.0
    while True:
        at += rng.expovariate(rate)
        if at >= seconds:
            break
        push(at, "arrive", Task(at, strategy_name))
    queue, finished, calls = deque(), [], []
    free = set(range(agents))  # agents with a slot left

    def dispatch(now_s):
        """A dispatch round: queued tasks in order, as many as the product's round locks (its places:
        each agent's free slots and next turn, plus ROUND_SPARE_TASKS, up to DISPATCH_BATCH_SIZE);
        those the strategy leaves pending (or that find no free agent) stay queued, in order."""
        if not queue or not free:
            return
        now = base + timedelta(seconds=now_s)
        # The round's candidates, as the product's query reads them: every agent, or a uniform sample
        # of `window`; the free ones can take a task, the full ones may be waited for.
        pool = [fleet[i] for i in (rng.sample(range(agents), window) if agents > window else range(agents))]
        kept = deque()
        places = sum(max(2 * c.max_concurrency - c.load, 0) for c in fleet) + ROUND_SPARE_TASKS
        for _ in range(min(len(queue), settings.DISPATCH_BATCH_SIZE, places)):
            task = queue.popleft()
            able = [c for c in pool if c.load < c.max_concurrency]
            if not able:
                kept.append(task)
                continue
            avoid = set(task.avoid_agents)
            fresh = [c for c in able if c.agent_id not in avoid]
            if not fresh:
                if task.failover_until is not None and now_s < task.failover_until:
                    kept.append(task)  # a prompt failover waits for an agent it has not tried
                    continue
                fresh = able
            busy = ()
            if strategy.weighs_waiting:
                busy = [c for c in pool if c.load >= c.max_concurrency and c.agent_id not in avoid]
            chosen = strategy.choose(task, fresh, now, busy=busy).candidate
            if chosen is None:
                kept.append(task)
                continue
            i = index_of[chosen.agent_id]
            chosen.load += 1
            if chosen.load >= chosen.max_concurrency:
                free.discard(i)
            task.attempts += 1
            task.failover_until = None
            duration, ok, refused = call(i, now_s)
            calls.append((i % behaviours, int(now_s), 200 if ok else 503 if refused else 500))
            push(now_s + duration + gap_ms / 1000, "finish", (task, i, duration, ok, refused))
        for agent in pool:  # the tasks that chose to wait for a full agent are counted again next round
            agent.waiting = 0
        kept.extend(queue)
        queue.clear()
        queue.extend(kept)

    while events:
        now_s, _, kind, payload = heapq.heappop(events)
        if kind in ("arrive", "due"):
            queue.append(payload)
        elif kind == "finish":
            task, i, duration, ok, refused = payload
            agent = fleet[i]
            agent.load -= 1
            free.add(i)
            now = base + timedelta(seconds=now_s)
            sample = model.Sample(agent.agent_id, "sim", duration * 1000, ok)
            agent.routes["sim"] = model.fold(agent.routes.get("sim"), sample, now)
            if ok:  # agents/capacity.py's figures, which `fastest` reads
                agent.success_rate = agent.success_rate * 0.9 + 0.1
                latency = duration * 1000
                agent.avg_latency_ms = (
                    latency if agent.avg_latency_ms is None else agent.avg_latency_ms * 0.8 + latency * 0.2
                )
                finished.append((now_s - task.created, True, task.attempts))
            else:
                agent.success_rate *= 0.9
                if task.attempts - 1 < max_retries:
                    task.avoid_agents.append(agent.agent_id)
                    ceiling = min(
                        settings.TASK_RETRY_BACKOFF_MAX,
                        settings.TASK_RETRY_BACKOFF_BASE * 2 ** (task.attempts - 1),
                    )
                    backoff = rng.uniform(0, ceiling)
                    if refused and task.attempts <= settings.TASK_FAILOVER_ATTEMPTS:
                        # engine/outcomes.py's prompt failover: due now on agents not tried yet, on
                        # the others after the backoff (a round then, should only they be free)
                        task.failover_until = now_s + backoff
                        push(now_s, "due", task)
                        push(task.failover_until, "wake", None)
                    else:
                        push(now_s + backoff, "due", task)
                else:
                    finished.append((now_s - task.created, False, task.attempts))
        dispatch(now_s)
    return summarize(finished, calls, agents=behaviours, drain_seconds=seconds)


def _mean_of(summaries):
    """One summary from several seeds' runs: the mean of each figure (shares per agent likewise)."""
    if len(summaries) == 1:
        return summaries[0]
    merged = {}
    for name, first in summaries[0].items():
        values = [summary[name] for summary in summaries]
        if isinstance(first, list):
            merged[name] = [round(sum(column) / len(column), 3) for column in zip(*values, strict=True)]
        elif any(value is None for value in values):
            merged[name] = None
        else:
            merged[name] = round(sum(values) / len(values), 1 if name.endswith("_ms") else 4)
    return merged


def run(*, agents, seconds, seeds, slots=2, loads=(0.5, 0.8), window=None, capacity_share=1.0, gap_ms=0.0):
    """Every case, load and strategy; with several seeds, each figure is the mean over the seeds.

    capacity_share: the share of the nominal capacity the loads are fractions of (the real benchmark's
    loads are fractions of its measured capacity, about 0.74 of the nominal on a 2-core box). gap_ms:
    see `simulate`; with both, the simulated fleet carries what the real one does (docs/routing.md)."""
    from bench.routing import CASES, STRATEGIES, judge

    results = {
        "agents": agents,
        "slots": slots,
        "seconds": seconds,
        "seeds": list(seeds),
        "window": window,
        "capacity_share": capacity_share,
        "gap_ms": gap_ms,
        "runs": {},
    }
    for case in CASES:
        for load in loads:
            key = f"{case}@{int(load * 100)}"
            results["runs"][key] = {
                name: _mean_of(
                    [
                        simulate(
                            agents=agents,
                            case=case,
                            load=load * capacity_share,
                            strategy_name=name,
                            seconds=seconds,
                            seed=seed,
                            slots=slots,
                            window=window,
                            gap_ms=gap_ms,
                        )
                        for seed in seeds
                    ]
                )
                for name in STRATEGIES
            }
    results["verdicts"] = judge(results["runs"])
    return results


def report(results):
    from bench.routing import MEDIANS_MS, tables

    lines = [
        "# Routing simulation (bench/routing_sim.py)",
        "",
        f"{results['agents']} agents (the six behaviours repeated, {results['slots']} slots each),"
        f" {results['seconds']} s simulated per run, seeds {', '.join(map(str, results['seeds']))}"
        " (each figure the mean over the seeds), each dispatch round seeing"
        f" {results['window'] or 'every'} agents (a uniform sample), loads as fractions of"
        f" {results['capacity_share']} x the nominal capacity, each call holding its slot"
        f" {results['gap_ms']} ms past its answer. Shares are per behaviour"
        f" (medians {'/'.join(map(str, MEDIANS_MS))} ms).",
        "",
    ]
    return "\n".join(lines + tables(results, share="behaviour")) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument(
        "--seconds", type=float, default=1, help="simulated seconds per run (1,000 agents: ~6 min in all)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=64,
        help="agents a dispatch round sees, a uniform sample (ROUTING_CANDIDATE_SAMPLE; 64 keeps a"
        " 1,000-agent run in minutes: each choice costs the window)",
    )
    parser.add_argument(
        "--seeds",
        type=comma_list(int),
        default=[17],
        help="comma-separated seeds; with several, each figure is the mean over them",
    )
    parser.add_argument(
        "--capacity-share",
        type=float,
        default=1.0,
        help="the loads are fractions of this share of the nominal capacity (0.74: the real"
        " benchmark's measured capacity on a 2-core box)",
    )
    parser.add_argument(
        "--dispatch-gap-ms",
        dest="gap_ms",
        type=float,
        default=0.0,
        help="how long each call holds its slot past its answer (17: what makes six agents complete the"
        " 100 tasks/s the real benchmark measured on a 2-core box)",
    )
    parser.add_argument("--slots", type=int, default=2, help="slots per agent (2, as the real benchmark)")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    _setup_django()
    started = time.monotonic()
    results = run(**vars(args))  # the options are named as run's parameters
    results["wall_s"] = round(time.monotonic() - started, 1)
    report_module.write_section(OUT, report(results), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
