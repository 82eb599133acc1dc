"""`python -m bench.candidates [--rounds 15]`: what a dispatch round costs as the fleet grows (issue 17).

Every strategy sees every eligible agent, up to ROUTING_CANDIDATE_SAMPLE (1,000) of them, a uniform
sample beyond that (tasks/engine/claim.py). This measures what that costs: for fleets of 10 to 3,000
agents serving one capability, with learned routes for all of them (agents_agentroute), the candidate
query alone and a whole claim round with 200 due tasks, per strategy (a round locks only as many as
the fleet has places for: 88 of them with 10 agents, tasks/engine/claim.py). Each round's tasks and the
agents' loads are reset between rounds, so every round does the same work.

Runs in a database of its own (orchestrator_bench_candidates; BENCH_DATABASE to change) on the server the
benchmark uses, with no service process: the round runs in this process, as a worker's dispatcher runs it.
Writes var/bench/candidates.md and .json.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

from . import report as report_module
from . import stack as stack_module

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "candidates.md"
FLEETS = (10, 100, 1000, 3000)
STRATEGIES = ("least_connections", "fastest", "adaptive")
CAPABILITY = "cand"
TASKS_PER_ROUND = 200
SLOTS = 4


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15, help="rounds per fleet and strategy")
    return parser.parse_args(argv)


def make_fleet(size):
    """`size` online agents with room, each with a learned route on the capability."""
    from django.db import connection
    from django.utils import timezone

    from agents.models import Agent, AgentRoute
    from agents.routing import route_key
    from orchestrator_project.accounts.models import hash_token, new_raw_token

    Agent.objects.all().delete()
    now = timezone.now()
    agents = Agent.objects.bulk_create(
        Agent(
            type="bench",
            name=f"agent {n}",
            endpoint=f"http://127.0.0.1:1/{n}",
            capabilities=[CAPABILITY],
            max_concurrency=SLOTS,
            token_hash=hash_token(new_raw_token("aoa_")),
            signing_secret="whsec_bench",
            last_heartbeat=now,
            avg_latency_ms=50 + n % 400,
        )
        for n in range(size)
    )
    key = route_key([CAPABILITY])
    AgentRoute.objects.bulk_create(
        AgentRoute(
            agent=agent,
            capability=key,
            latency_ms=50 + n % 400,
            success_rate=0.99,
            samples=100,
            updated_at=now,
        )
        for n, agent in enumerate(agents)
    )
    # The planner's statistics as autovacuum keeps them on a fleet that registered a while ago: just after
    # a bulk insert they still describe the empty tables (see docs/routing.md).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE agents_agent, agents_agentroute")


def queue_round(strategy):
    from django.utils import timezone

    from agents.models import Agent
    from tasks.models import Task

    Task.objects.all().delete()
    Agent.objects.update(current_load=0)
    now = timezone.now()
    Task.objects.bulk_create(
        Task(type="t", required_capabilities=[CAPABILITY], strategy=strategy, next_attempt_at=now)
        for _ in range(TASKS_PER_ROUND)
    )


def measure(size, rounds):
    from django.utils import timezone

    from tasks.engine import claim

    make_fleet(size)
    demand = {frozenset([CAPABILITY]): TASKS_PER_ROUND}
    query = []
    for _ in range(rounds):
        started = time.perf_counter()
        found = claim._candidates(demand, timezone.now())
        query.append(time.perf_counter() - started)
    seen = len(next(iter(found.values())))
    result = {"agents": size, "candidates_seen": seen, "candidate_query_ms": _p50_ms(query)}
    for strategy in STRATEGIES:
        times, assigned = [], 0
        for _ in range(rounds):
            queue_round(strategy)
            started = time.perf_counter()
            assigned = len(claim.claim(limit=TASKS_PER_ROUND))
            times.append(time.perf_counter() - started)
        result[strategy] = {"round_ms": _p50_ms(times), "assigned": assigned}
    return result


def _p50_ms(seconds):
    return round(statistics.median(seconds) * 1000, 2)


def report(results):
    lines = [
        "## Dispatch rounds and the fleet's size (bench/candidates.py)",
        "",
        f"Measured {results['at']} on {os.cpu_count()} cores: medians of {results['rounds']} rounds; a"
        f" round claims {TASKS_PER_ROUND} due tasks among agents of {SLOTS} slots each, every agent with a"
        " learned route.",
        "",
        "| Agents | Candidates a round sees | Candidate query ms | "
        + " | ".join(f"Round of {TASKS_PER_ROUND}, {s} ms" for s in STRATEGIES)
        + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in STRATEGIES) + " |",
    ]
    for row in results["fleets"]:
        lines.append(
            f"| {row['agents']} | {row['candidates_seen']} | {row['candidate_query_ms']} | "
            + " | ".join(f"{row[s]['round_ms']} ({row[s]['assigned']} assigned)" for s in STRATEGIES)
            + " |"
        )
    return "\n".join([*lines, ""])


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    log_dir = ROOT / "var" / "bench" / "logs" / "candidates"
    stack_module.own_database("orchestrator_bench_candidates", log_dir)
    results = {
        "at": datetime.now().isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "fleets": [measure(size, args.rounds) for size in FLEETS],
    }
    report_module.write_section(OUT, report(results), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
