"""`python -m bench.events [--quick]`: the event streaming figures of issue 16, on a fresh database.

1. **Outbox overhead on task creation.** `tasks.services.create_task` (the API's creation minus HTTP and
   DRF, which cost the same either way) with the outbox CTE (EVENT_SINK=redis) and without it
   (EVENT_SINK=none), side by side: rounds alternate A B B A so the box's drift and the table's growth
   fall on both. Median time per creation of each; the ratio is the worst case of the API's ratio.
   Target: at most 1.10.
2. **Relay throughput.** The backlog those rounds left, published by `manage.py relay_events` (its own
   process, the default Redis Streams sink): events per second from its first batch to the last.
3. **End-to-end lag.** A writer creates tasks at a steady 500 per second; the relay publishes; a reader
   blocked on the stream takes each `task.created` entry and measures now - ce_time (the change's time).
   Target: p99 at most 250 ms.

Uses bench/stack.py's servers and database handling, in a database of its own (orchestrator_bench_events;
BENCH_DATABASE to change). Writes var/bench/events.md and .json; `python -m bench.run` runs it after the
main benchmark and puts it in its report (`--no-events` skips it).
"""

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from . import TARGETS_MISSED, pacing
from . import report as report_module
from . import stack as stack_module

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "events.md"
WRITERS = 8


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--rate", type=int, default=500, help="changes per second for the lag (500)")
    return parser.parse_args(argv)


def _task_data():
    return {"type": "bench", "input_data": {"document": "x" * 200}, "required_capabilities": ["bench"]}


def creation_overhead(*, rounds, per_round):
    from django.conf import settings

    from tasks import services

    timings = {"redis": [], "none": []}
    order = ["redis", "none", "none", "redis"]
    for _ in range(50):  # warm-up: connections, prepared statements, caches
        services.create_task(data=_task_data())
    for round_ in range(rounds):
        sink = order[round_ % len(order)]
        settings.EVENT_SINK = sink
        started = time.perf_counter()
        for _ in range(per_round):
            services.create_task(data=_task_data())
        timings[sink].append((time.perf_counter() - started) / per_round * 1e6)
    settings.EVENT_SINK = "redis"
    on, off = statistics.median(timings["redis"]), statistics.median(timings["none"])
    return {
        "per_creation_us_sink_on": round(on, 1),
        "per_creation_us_sink_off": round(off, 1),
        "ratio": round(on / off, 3),
        "rounds": rounds,
        "per_round": per_round,
        "target": "<= 1.10",
        "met": on / off <= 1.10,
    }


def _unpublished():
    from orchestrator_project.outbox.models import OutboxEvent

    return OutboxEvent.objects.filter(published_at__isnull=True).count()


def start_relay(log_dir):
    child = stack_module.Child("relay", [sys.executable, "-m", "django", "relay_events"], log_dir)
    child.wait_for_output("relay starting", timeout=60)
    return child


def relay_throughput(log_dir):
    backlog = _unpublished()
    relay = start_relay(log_dir)
    samples = []
    while True:
        left = _unpublished()
        samples.append((time.monotonic(), left))
        if left == 0:
            break
        time.sleep(0.05)  # sampling interval
    # From the first sample that saw progress: the process start-up is not the relay's throughput.
    moving = [s for s in samples if s[1] < backlog] or samples
    first, last = samples[0], moving[-1]
    seconds = max(last[0] - first[0], 1e-6)
    return relay, {
        "events": first[1],
        "seconds": round(seconds, 2),
        "events_per_s": round(first[1] / seconds),
    }


def end_to_end_lag(*, rate, seconds):
    import redis
    from django.conf import settings
    from django.db import connection

    from tasks import services

    stream = settings.EVENT_TOPICS["task"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    last_id = (client.xinfo_stream(stream)["last-generated-id"] if client.exists(stream) else b"0-0").decode()
    lags, done = [], threading.Event()

    def read():
        nonlocal last_id
        while not done.is_set():
            for _, entries in client.xread({stream: last_id}, block=200, count=1000) or []:
                now = time.time()
                for entry_id, fields in entries:
                    last_id = entry_id
                    if fields[b"ce_type"].endswith(b"task.created.v1"):
                        at = datetime.fromisoformat(fields[b"ce_time"].decode()).timestamp()
                        lags.append(now - at)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    total = rate * seconds
    started = pacing.run_schedule(
        [i / rate for i in range(total)],
        lambda: services.create_task(data=_task_data()),
        threads=WRITERS,
        on_exit=lambda: connection.close(),
    )
    achieved = total / (time.monotonic() - started)
    deadline = time.monotonic() + 30
    while len(lags) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    reader.join(5)
    client.close()
    ordered = sorted(lags)

    def percentile(p):
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1) if ordered else None

    p99 = percentile(0.99)
    return {
        "rate_asked": rate,
        "rate_achieved": round(achieved),
        "events": len(lags),
        "p50_ms": percentile(0.50),
        "p95_ms": percentile(0.95),
        "p99_ms": p99,
        "max_ms": percentile(1.0),
        "target": "p99 <= 250 ms",
        # Only at the rate asked (within 5%) does the figure answer the question.
        "met": p99 is not None and p99 <= 250 and len(lags) == total and achieved >= 0.95 * rate,
    }


def report(results):
    overhead, relay, lag = results["creation_overhead"], results["relay_throughput"], results["lag"]
    return "\n".join(
        [
            "## Event streaming (bench/events.py, its own database)",
            "",
            f"Measured {results['at']} on {os.cpu_count()} cores.",
            "",
            "| Figure | Value | Target |",
            "| --- | --- | --- |",
            "| Task creation with the outbox vs without (median per creation) |"
            f" {overhead['per_creation_us_sink_on']} vs {overhead['per_creation_us_sink_off']} us:"
            f" **{overhead['ratio']}x** | <= 1.10x"
            f" ({'met' if overhead['met'] else 'NOT met'}) |",
            f"| Relay throughput (Redis Streams) | {relay['events_per_s']} events/s"
            f" ({relay['events']} events) | |",
            f"| End-to-end lag at {lag['rate_achieved']}/s ({lag['events']} events) | p50 {lag['p50_ms']} ms,"
            f" p95 {lag['p95_ms']} ms, **p99 {lag['p99_ms']} ms**, max {lag['max_ms']} ms | p99 <= 250 ms"
            f" ({'met' if lag['met'] else 'NOT met'}) |",
            "",
        ]
    )


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    log_dir = ROOT / "var" / "bench" / "logs"
    stack_module.own_database("orchestrator_bench_events", log_dir)
    rounds, per_round, seconds = (4, 200, 3) if args.quick else (12, 1000, 20)
    results = {"at": datetime.now().isoformat(timespec="seconds")}
    print("bench.events: creation with and without the outbox...", flush=True)
    results["creation_overhead"] = creation_overhead(rounds=rounds, per_round=per_round)
    print(f"bench.events: {results['creation_overhead']}", flush=True)
    relay, results["relay_throughput"] = relay_throughput(log_dir)
    print(f"bench.events: {results['relay_throughput']}", flush=True)
    try:
        results["lag"] = end_to_end_lag(rate=args.rate, seconds=seconds)
    finally:
        relay.stop()
    print(f"bench.events: {results['lag']}", flush=True)
    report_module.write_section(OUT, report(results), results)
    return 0 if results["creation_overhead"]["met"] and results["lag"]["met"] else TARGETS_MISSED


if __name__ == "__main__":
    sys.exit(main())
