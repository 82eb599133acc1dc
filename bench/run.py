"""`make bench` / `make bench-quick`: start the real stack, run the baselines and scenarios, write the report.

    python -m bench.run                 # full: 3 runs, 1,000,000 tasks for the reads; docs/benchmarks.md
    python -m bench.run --quick         # small, 1 run, < 1 minute; var/bench/benchmarks-quick.md
    python -m bench.run --profile e2e_single,live_events   # also py-spy the web and worker there

Postgres and Redis: DATABASE_URL / REDIS_URL when set, else the embedded servers (see bench/stack.py for
the database and Redis number the benchmark uses instead of the project's own).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from . import TARGETS_MISSED
from . import stack as stack_module

ROOT = Path(__file__).resolve().parent.parent

# In run order. Baselines sit in each run next to the scenarios they are compared with.
SCENARIOS = [
    "baseline_postgres",
    "baseline_drf",
    "baseline_drf_relaxed",
    "baseline_celery",
    "baseline_dispatch",
    "create_api",
    "e2e_single",
    "e2e_bulk",
    "dispatch_latency",
    "heartbeats",
    "slow_agents",
    "live_events",
]
THROUGHPUT = ("e2e_single", "e2e_bulk")
# Scenarios judged as a ratio to a baseline get that baseline measured again right before and right
# after them (outside their own window): this box's speed drifts by a fifth within minutes, and a
# scenario sits minutes after its run's first baseline. Their ratio is to the mean of the two.
BRACKETED = {
    "create_api": [("baseline_drf", "requests_per_s")],
    "e2e_single": [("baseline_drf", "requests_per_s"), ("baseline_dispatch", "tasks_per_s")],
    "e2e_bulk": [("baseline_celery", "tasks_per_s")],
    "heartbeats": [("baseline_drf_relaxed", "requests_per_s")],
}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (CI's smoke test)")
    parser.add_argument("--runs", type=int, help="runs to take the median of (3 full, 1 quick)")
    parser.add_argument("--out", help="Markdown report path (JSON beside it)")
    parser.add_argument("--only", help="comma-separated scenarios to run (plus reads if named)")
    parser.add_argument("--profile", default="", help="comma-separated scenarios to py-spy in the last run")
    parser.add_argument("--no-reads", action="store_true", help="skip the reads-at-scale phase")
    parser.add_argument(
        "--no-events", dest="events", action="store_false", help="skip bench/events.py (outbox and relay)"
    )
    parser.add_argument(
        "--no-workflows", dest="workflows", action="store_false", help="skip bench/workflows.py"
    )
    parser.add_argument(
        "--routing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bench/routing.py (strategies against loopback agents, ~10 minutes): in the full benchmark"
        " unless --no-routing, in the quick one only with --routing",
    )
    args = parser.parse_args(argv)
    if args.routing is None:
        args.routing = not args.quick
    return args


# Scenarios with a process and database of their own (this one's Django is set up on the main
# benchmark's), run after it: module -> the option that decides (events, workflows: on unless
# --no-events, --no-workflows; routing: in the full benchmark, about 10 minutes). Each writes
# var/bench/<name>.md, whose text becomes a section of the report.
SUB_BENCHMARKS = {"bench.events": "events", "bench.workflows": "workflows", "bench.routing": "routing"}


def _sub_benchmark(module, *, quick, failures):
    command = [sys.executable, "-m", module, *(["--quick"] if quick else [])]
    markdown_path = ROOT / "var" / "bench" / f"{module.rpartition('.')[2]}.md"
    markdown_path.unlink(missing_ok=True)
    status = subprocess.run(command, cwd=ROOT).returncode
    # A missed target is a figure in the report (its section says "not met"), as in the main
    # benchmark; only a sub-benchmark that could not run fails this one.
    if status not in (0, TARGETS_MISSED):
        failures.append(f"{module}: failed with exit status {status} (its log above)")
    return markdown_path.read_text() if markdown_path.exists() else None


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    started = time.monotonic()
    runs = args.runs or (1 if args.quick else 3)
    out = (
        Path(args.out)
        if args.out
        else ROOT / ("var/bench/benchmarks-quick.md" if args.quick else "docs/benchmarks.md")
    )
    log_dir = ROOT / "var" / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    profile_dir = ROOT / "var" / "bench" / "profiles"

    print("bench: preparing a fresh database...", flush=True)
    stack_module.configure()
    migrate_s = stack_module.migrate(log_dir)
    import django

    django.setup()

    from . import profiling, report
    from .scenarios import Bench, Size

    size = Size.quick() if args.quick else Size.full()
    only = set(args.only.split(",")) if args.only else None
    to_profile = {name for name in args.profile.split(",") if name}
    stack = stack_module.Stack(log_dir)
    # SIGTERM (a timeout, CI) unwinds like Ctrl-C, so the children are stopped and the report written.
    signal.signal(signal.SIGTERM, _interrupt)
    raw = [{} for _ in range(runs)]
    described = {}  # the processes measured, for the report
    profiles = {}
    failures = []
    try:
        t0 = time.monotonic()
        stack.start()
        print(f"bench: stack up in {time.monotonic() - t0:.1f} s (migrate {migrate_s:.1f} s), "
              f"web on 127.0.0.1:{stack.port}", flush=True)  # fmt: skip
        described = stack.describe()
        bench = Bench(stack, size)
        bench.setup()
        for r in range(runs):
            for name in SCENARIOS:
                if only and name not in only:
                    continue
                label = f"{name}#{r}"
                profiler = None
                if name in to_profile and r == runs - 1:
                    profiler = profiling.start(stack, name, profile_dir)
                t1 = time.monotonic()
                before = _bracket(bench, name, failures, label)
                stack.sampler.mark(label)
                try:
                    fn = getattr(bench, name)
                    result = fn(log_dir) if name == "live_events" else fn()
                except Exception as exc:
                    traceback.print_exc()
                    failures.append(f"{label}: {exc!r}")
                    result = {"error": repr(exc)}
                stack.sampler.end()
                if profiler:
                    profiles.update(profiling.stop(profiler))
                result["process"] = stack.sampler.window(label)
                if name in BRACKETED:
                    after = _bracket(bench, name, failures, label)
                    result["bracket"] = {
                        baseline: _bracket_result(key, before[baseline], after[baseline])
                        for baseline, key in BRACKETED[name]
                    }
                result["wall_s"] = round(time.monotonic() - t1, 1)
                raw[r][name] = result
                print(
                    f"bench: run {r + 1}/{runs} {name}: {_headline(result)} ({result['wall_s']} s)",
                    flush=True,
                )
            raw[r]["memory"] = {
                proc: max(
                    [
                        raw[r].get(s, {}).get("process", {}).get("peak_rss_mb", {}).get(proc, 0)
                        for s in THROUGHPUT
                    ]
                    or [0]
                )
                or None
                for proc in ("web", "worker")
            }
        if not args.no_reads and (not only or "reads" in only):
            print(f"bench: loading {size.read_tasks:,} tasks and {size.read_agents:,} agents...", flush=True)
            stack.sampler.mark("reads_setup")
            try:
                setup = bench.reads_setup()
            except Exception as exc:
                # The throughput runs are measured already: the report must still be written.
                traceback.print_exc()
                failures.append(f"reads_setup: {exc!r}")
                raise _ReadsFailed from exc
            finally:
                stack.sampler.end()
            print(
                f"bench: loaded in {setup['load_s']} s; "
                f"claim with 1k tasks p50 {setup['claim_1k']['p50_ms']} ms",
                flush=True,
            )
            for r in range(runs):
                raw[r]["reads_setup"] = setup
                profiler = (
                    profiling.start(stack, "reads", profile_dir)
                    if "reads" in to_profile and r == runs - 1
                    else None
                )
                stack.sampler.mark(f"reads#{r}")
                try:
                    raw[r]["reads"] = bench.reads()
                except Exception as exc:
                    traceback.print_exc()
                    failures.append(f"reads#{r}: {exc!r}")
                    raw[r]["reads"] = {"error": repr(exc)}
                stack.sampler.end()
                if profiler:
                    profiles.update(profiling.stop(profiler))
                raw[r]["reads"]["process"] = stack.sampler.window(f"reads#{r}")
                print(f"bench: run {r + 1}/{runs} reads: " + ", ".join(
                    f"{k} p99 {v.get('p99_ms')} ms"
                    for k, v in raw[r]["reads"].items()
                    if isinstance(v, dict) and "p99_ms" in v
                ), flush=True)  # fmt: skip
    except _ReadsFailed:
        pass  # recorded in failures; the report holds the throughput runs
    except KeyboardInterrupt:
        failures.append("interrupted: the report holds what was measured before")
    finally:
        stack.stop()

    data = {
        "command": "make bench-quick" if args.quick else "make bench",
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "size": size.__dict__,
        "runs": runs,
        "wall_s": time.monotonic() - started,
        "machine": report.machine(),
        "stack": described,
        "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in stack.sampler.peak.items()},
        "figures": report.figures(raw),
        "baselines": report.baselines(raw),
        "failures": failures,
        "profiles": profiles,
        "raw": raw,
    }
    data["sections"] = [
        section
        for module, wanted in SUB_BENCHMARKS.items()
        if getattr(args, wanted)
        and (section := _sub_benchmark(module, quick=args.quick, failures=failures)) is not None
    ]
    report.write(data, out, out.with_suffix(".json"))
    print(f"bench: wrote {out} and {out.with_suffix('.json')} in {data['wall_s']:.0f} s", flush=True)
    for row in data["figures"]:
        ratio = "" if row["ratio"] is None else f" (x{row['ratio']})"
        print(f"  {'ok ' if row['met'] else 'NO '} {row['figure']}: {row['value']} {row['unit']}{ratio}")
    if failures:
        print("bench: scenarios that failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def _bracket(bench, name, failures, label):
    """{baseline: its figure, measured now (None if it failed)} for each baseline bracketing `name`."""
    measured = {}
    for baseline, key in BRACKETED.get(name, []):
        try:
            measured[baseline] = getattr(bench, baseline)().get(key)
        except Exception as exc:
            traceback.print_exc()
            failures.append(f"{label} ({baseline} beside it): {exc!r}")
            measured[baseline] = None
    return measured


def _bracket_result(key, before, after):
    measured = [v for v in (before, after) if v is not None]
    mean = round(sum(measured) / len(measured), 1) if len(measured) == 2 else None
    return {"before": before, "after": after, key: mean}


class _ReadsFailed(Exception):
    pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _headline(result):
    for key in ("tasks_per_s", "requests_per_s", "commits_per_s", "all_done_s", "p99_ms", "error"):
        if result.get(key) is not None:
            return f"{key}={result[key]}"
    return ""


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
