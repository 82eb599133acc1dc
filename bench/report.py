"""Figures from the raw results, and the Markdown/JSON report.

Every figure is computed per run (value, its same-run baseline, their ratio); the report shows each
run's and the median. A target counts as met only when the worst run meets it. A throughput judged
against a baseline is compared with that baseline measured right before and right after it (bench/run.py
BRACKETED), so a ratio compares numbers measured seconds apart, not minutes. Everything in the report is
generated from this run; the hand-written analysis lives in bench/notes.md and is only linked.
"""

import json
import platform
import statistics
from pathlib import Path

import psutil


def _get(data, path):
    for key in path.split("."):
        if data is None:
            return None
        data = data.get(key) if isinstance(data, dict) else None
    return data


# (key, figure, unit, value path, baseline name, baseline path, target text, check(value, ratio))
FIGURES = [
    ("e2e_single", "End-to-end, one task per request (created -> completed)", "tasks/s",
     "e2e_single.tasks_per_s", "bare DRF creates/s", "e2e_single.bracket.baseline_drf.requests_per_s",
     ">= 0.45 x bare DRF", lambda v, r: r is not None and r >= 0.45),
    ("e2e_vs_celery", "End-to-end, one task per request, against a hand-rolled Celery dispatch", "tasks/s",
     "e2e_single.tasks_per_s", "hand-rolled dispatch tasks/s",
     "e2e_single.bracket.baseline_dispatch.tasks_per_s",
     ">= 1.0 x hand-rolled Celery", lambda v, r: r is not None and r >= 1.0),
    ("e2e_bulk", "End-to-end throughput, POST /tasks/bulk x 1,000", "tasks/s",
     "e2e_bulk.tasks_per_s", "raw Celery no-op tasks/s", "e2e_bulk.bracket.baseline_celery.tasks_per_s",
     ">= 1.2 x raw Celery", lambda v, r: r is not None and r >= 1.2),
    ("create_max", "Task creation API, max rate, with dispatch running beside it", "req/s",
     "create_api.requests_per_s", "bare DRF creates/s", "create_api.bracket.baseline_drf.requests_per_s",
     ">= 0.5 x bare DRF", lambda v, r: r is not None and r >= 0.5),
    ("create_p99", "Task creation API, p99 at 100 req/s", "ms",
     "create_api.at_100.p99_ms", None, None, "<= 50 ms", lambda v, r: v is not None and v <= 50),
    ("dispatch_p50", "Dispatch latency p50 (created -> agent receives), 100 tasks/s", "ms",
     "dispatch_latency.p50_ms", None, None, "<= 15 ms", lambda v, r: v is not None and v <= 15),
    ("dispatch_p99", "Dispatch latency p99, 100 tasks/s", "ms",
     "dispatch_latency.p99_ms", None, None, "<= 100 ms", lambda v, r: v is not None and v <= 100),
    ("heartbeat_max", "Heartbeat ingestion, max rate (distinct agents: see Sizes)", "req/s",
     "heartbeats.requests_per_s", "bare DRF creates/s, same commit mode",
     "heartbeats.bracket.baseline_drf_relaxed.requests_per_s",
     ">= 0.8 x bare DRF", lambda v, r: r is not None and r >= 0.8),
    ("heartbeat_p99", "Heartbeat p99 at half the max rate", "ms",
     "heartbeats.at_half.p99_ms", None, None, "<= 100 ms", lambda v, r: v is not None and v <= 100),
    ("read_list", "Reads at scale: task list p99", "ms",
     "reads.list.p99_ms", None, None, "<= 50 ms", lambda v, r: v is not None and v <= 50),
    ("read_filter", "Reads at scale: filtered task list p99", "ms",
     "reads.filter.p99_ms", None, None, "<= 50 ms", lambda v, r: v is not None and v <= 50),
    ("read_detail", "Reads at scale: task detail p99", "ms",
     "reads.detail.p99_ms", None, None, "<= 50 ms", lambda v, r: v is not None and v <= 50),
    ("read_agents", "Reads at scale: agent list p99 (not in the issue's table)", "ms",
     "reads.agents_list.p99_ms", None, None, "<= 50 ms", lambda v, r: v is not None and v <= 50),
    ("claim_scale", "Dispatch selection (one claim of 200), p50 with the big table", "ms",
     "reads.claim_1m.p50_ms", "same with 1,000 tasks", "reads_setup.claim_1k.p50_ms",
     "<= 2 x the small table", lambda v, r: r is not None and r <= 2),
    ("slow_agents", "Slow agents: all done (2 s agents, 10 slots each)", "s",
     "slow_agents.all_done_s", None, None, "<= 6 s", lambda v, r: v is not None and v <= 6),
    ("live_p99", "Live events: delivery p99 at 100 transitions/s", "ms",
     "live_events.p99_ms", None, None, "<= 250 ms", lambda v, r: v is not None and v <= 250),
    ("rss_web", "Memory: web peak RSS of its largest process, throughput runs", "MB",
     "memory.web", None, None, "<= 250 MB", lambda v, r: v is not None and v <= 250),
    ("rss_worker", "Memory: Celery worker peak RSS of its largest process, throughput runs", "MB",
     "memory.worker", None, None, "<= 250 MB", lambda v, r: v is not None and v <= 250),
]  # fmt: skip

BASELINES = [
    (
        "Raw Celery: no-op tasks, one publisher per core, prefork consumer",
        "tasks/s",
        "baseline_celery.tasks_per_s",
    ),
    (
        "Bare DRF on gunicorn (sync worker per core): token auth, validate, insert one row",
        "req/s",
        "baseline_drf.requests_per_s",
    ),
    ("Bare DRF: p99 at max rate", "ms", "baseline_drf.p99_ms"),
    (
        "Bare DRF, committing without waiting for the WAL flush",
        "req/s",
        "baseline_drf_relaxed.requests_per_s",
    ),
    (
        "Hand-rolled Celery dispatch: row + Celery task POSTing to the agent",
        "tasks/s",
        "baseline_dispatch.tasks_per_s",
    ),
    (
        "Postgres: single-row INSERT commits from 4 connections",
        "commits/s",
        "baseline_postgres.commits_per_s",
    ),
]


def _median(values, digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return None
    median = statistics.median(values)
    return median if digits is None else round(median, digits)


def figures(runs):
    rows = []
    for key, label, unit, path, base_label, base_path, target, check in FIGURES:
        values, bases, ratios = [], [], []
        for run in runs:
            value = _get(run, path)
            base = _get(run, base_path) if base_path else None
            values.append(value)
            bases.append(base)
            ratios.append(value / base if value is not None and base else None)
        value, base = _median(values), _median(bases)
        ratio = _median(ratios, digits=None) if base_path else None
        # Met only when every run meets it (the worst run decides), judged unrounded: a ratio of 0.697
        # does not meet ">= 0.7", whatever two decimals show.
        judged = [(v, r) for v, r in zip(values, ratios, strict=True) if v is not None]
        met = bool(judged) and len(judged) == len(runs) and all(check(v, r) for v, r in judged)
        rows.append(
            {
                "key": key,
                "figure": label,
                "unit": unit,
                "value": value,
                "baseline_name": base_label,
                "baseline": base,
                "ratio": None if ratio is None else round(ratio, 3),
                "target": target,
                "met": met,
                "per_run": values,
                "per_run_ratio": [None if r is None else round(r, 3) for r in ratios],
            }
        )
    return rows


def baselines(runs):
    return [
        {"baseline": label, "unit": unit, "value": _median([_get(r, path) for r in runs]),
         "per_run": [_get(r, path) for r in runs]}
        for label, unit, path in BASELINES
    ]  # fmt: skip


def machine():
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(value):
    # Three decimals: a target is judged on the unrounded ratio, and 0.697 must not read as 0.70.
    return "-" if value is None else f"{value:.3f}"


def markdown(data):
    size = data["size"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{data['command']}` on {data['finished']} ({data['size']['name']} size, "
        f"{data['runs']} run{'s' if data['runs'] > 1 else ''}; total {data['wall_s']:.0f} s). "
        f"Machine: {data['machine']['cpus']} CPUs, {data['machine']['memory_gb']} GB, Python "
        f"{data['machine']['python']}. Every process below, Postgres, Redis, the fake agents, the load"
        " generator and the WebSocket clients share these CPUs.",
        "",
        "The orchestrator runs as `make run` runs it; the baselines run beside it the ordinary way:",
        "",
        "| process | command |",
        "| --- | --- |",
        *[f"| {name} | `{command}` |" for name, command in (data.get("stack") or {}).items()],
        "",
        "Each run's ratio is computed within that run; a target is met only when every run meets it"
        " (judged unrounded). A throughput's baseline is measured again right before and right after it,"
        " and its ratio is to the mean of the two. The hand-written analysis (how the figures were"
        " reached, what was tried) is in [bench/notes.md](../bench/notes.md); nothing of it is copied here.",
        "",
        "| figure | median | baseline (median) | ratio per run | target | met in every run? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in data["figures"]:
        base = f"{_fmt(row['baseline'])} ({row['baseline_name']})" if row["baseline_name"] else "-"
        per_run = (
            ", ".join(_ratio(r) for r in row.get("per_run_ratio") or [])
            if row["baseline_name"]
            else (", ".join(_fmt(v) for v in row["per_run"]))
        )
        lines.append(
            f"| {row['figure']} | {_fmt(row['value'])} {row['unit']} | {base} | {per_run} | "
            f"{row['target']} | {'yes' if row['met'] else '**no**'} |"
        )
    lines += ["", "## Baselines (same run)", "", "| baseline | value | per run |", "| --- | --- | --- |"]
    for row in data["baselines"]:
        per_run = ", ".join(_fmt(v) for v in row["per_run"])
        lines.append(f"| {row['baseline']} | {_fmt(row['value'])} {row['unit']} | {per_run} |")
    lines += _brackets(data["raw"])
    lines += ["", "## Details (last run)", ""]
    last = data["raw"][-1]
    lines += _details(last, data)
    for section in data.get("sections") or []:
        lines += ["", section.strip(), ""]
    lines += ["", "## Sizes", "", "```", json.dumps(size, indent=None), "```", ""]
    if data.get("profiles"):
        lines += ["", "## Profile summaries (generated)", ""]
        for name, summary in data["profiles"].items():
            lines += [
                f"### {name}",
                "",
                f"{summary['samples']} samples. Inclusive share of project/library frames:",
                "",
            ]
            lines += ["| share | frame |", "| --- | --- |"]
            for frame, share in summary["inclusive"][:25]:
                lines.append(f"| {share:.1f}% | `{frame}` |")
            lines += ["", "Self time (top 12):", "", "| share | frame |", "| --- | --- |"]
            for frame, share in summary["self"][:12]:
                lines.append(f"| {share:.1f}% | `{frame}` |")
            lines.append("")
    return "\n".join(lines) + "\n"


def _brackets(runs):
    """The baselines measured beside each throughput scenario, per run (bench/run.py BRACKETED)."""
    lines = [
        "",
        "## Baselines beside each throughput",
        "",
        "| throughput | baseline | before / after it, per run |",
        "| --- | --- | --- |",
    ]
    names = [name for name in ("create_api", "e2e_single", "e2e_bulk", "heartbeats") if _get(runs[0], name)]
    for name in names:
        baselines = sorted({b for run in runs for b in (_get(run, f"{name}.bracket") or {})})
        for baseline in baselines:
            cells = ", ".join(
                f"{_fmt(_get(run, f'{name}.bracket.{baseline}.before'))} / "
                f"{_fmt(_get(run, f'{name}.bracket.{baseline}.after'))}"
                for run in runs
            )
            lines.append(f"| {name} | {baseline} | {cells} |")
    return lines if names else []


def _latency_cell(d):
    if not d:
        return "-"
    return f"{_fmt(d.get('p50_ms'))} / {_fmt(d.get('p95_ms'))} / {_fmt(d.get('p99_ms'))}"


def _details(run, data):
    lines = [
        "| scenario | throughput | latency p50 / p95 / p99 ms | errors | CPU % (machine; web, worker) "
        "| peak RSS MB (web, worker, agents) | load avg start, end |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in run.items():
        if not isinstance(result, dict) or name == "memory":
            continue
        process = result.get("process", {})
        cpu = process.get("cpu_percent", {})
        rss = process.get("peak_rss_mb", {})
        throughput = (
            result.get("tasks_per_s") or result.get("requests_per_s") or result.get("commits_per_s") or "-"
        )
        latency = result if "p99_ms" in result else result.get("max") or result.get("list") or {}
        errors = result.get("errors", result.get("failed", (result.get("max") or {}).get("errors", "-")))
        lines.append(
            f"| {name} | {_fmt(throughput)} | {_latency_cell(latency)} | {_fmt(errors)} | "
            f"{_fmt(cpu.get('machine'))}; {_fmt(cpu.get('web'))}, {_fmt(cpu.get('worker'))} | "
            f"{_fmt(rss.get('web'))}, {_fmt(rss.get('worker'))}, {_fmt(rss.get('agents'))} | "
            f"{process.get('loadavg_1min_start_end') or '-'} |"
        )
    extra = {
        "create_api at 100 req/s": _latency_cell(_get(run, "create_api.at_100")),
        "heartbeats at half rate": _latency_cell(_get(run, "heartbeats.at_half")),
        "heartbeat offered rate": _fmt(_get(run, "heartbeats.at_half.offered_rate_per_s")),
        "reads: list / page_size=500 / filter / detail / agents p99 ms": " / ".join(
            _fmt(_get(run, f"reads.{k}.p99_ms"))
            for k in ("list", "list_page_500", "filter", "detail", "agents_list")
        ),
        "claim p50 / p99 ms, 1k tasks": f"{_fmt(_get(data['raw'][-1], 'reads_setup.claim_1k.p50_ms'))} / "
        f"{_fmt(_get(data['raw'][-1], 'reads_setup.claim_1k.p99_ms'))}",
        "claim p50 / p99 ms, big table": f"{_fmt(_get(run, 'reads.claim_1m.p50_ms'))} / "
        f"{_fmt(_get(run, 'reads.claim_1m.p99_ms'))}",
        "tasks assigned per claim round (1k / big)": (
            f"{_get(run, 'reads_setup.claim_1k.assigned_per_round')} / "
            f"{_get(run, 'reads.claim_1m.assigned_per_round')}"
        ),
        "live events: clients connected, events measured / expected": ""
        f"{_get(run, 'live_events.connected')}, "
        f"{_fmt(_get(run, 'live_events.events'))} / {_fmt(_get(run, 'live_events.expected_deliveries'))}",
        "live events: CPU % of the client process (all sockets) while measuring": _fmt(
            _get(run, "live_events.client_cpu_percent")
        ),
        "peak RSS MB over the whole run": ", ".join(
            f"{k} {v}" for k, v in data.get("peak_rss_mb", {}).items()
        ),
    }
    lines += ["", "| more | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in extra.items()]
    return lines


def write(data, md_path, json_path):
    Path(md_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(data, indent=1, default=str) + "\n")
    Path(md_path).write_text(markdown(data))


def write_section(out, markdown, results):
    """A standalone script's report: its markdown at `out`, its raw results as .json beside it, and the
    markdown printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown, flush=True)
