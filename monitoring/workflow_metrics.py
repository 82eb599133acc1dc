"""Workflow metrics: runs started and ended (by workflow name), step latency (by step kind), active runs.

Counters and the histogram are added up in Redis like the task series (recorder.py), from the changes
the workflow engine announces after each commit (`workflows.events.changes_committed`): a worker's step
ends are counted even though its own registry is never scraped. The active-runs gauge is read from the
database at scrape time. Best effort, as all metrics: Redis being down never holds up a run.
"""

import math
import time
from collections import Counter

from django.conf import settings
from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from orchestrator_project import live
from workflows.models import RUN_ACTIVE, RunStatus, StepStatus, WorkflowRun
from workflows.runs import RETRIED_FROM_STEP

from . import recorder

RUNS_KEY = f"{recorder.PREFIX}:workflow_runs"  # fields "<status>|<workflow name>"
STEP_SECONDS_KEY = f"{recorder.PREFIX}:hist:workflow_step_seconds"  # fields "<kind>|b<n>", "<kind>|sum"...
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400)
# A run's transitions that the counters count: its start (reason "started", see engine.begin_run), an
# operator's retry from a step (which opens it again: it ends again) and its ends. So started + retried
# - ended is the runs still active, and a ratio of ends to starts does not drift with retries.
COUNTED_ENDS = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
STARTED = "started"
RETRIED = "retried"
TIMED_ENDS = (StepStatus.COMPLETED, StepStatus.FAILED)  # steps that ran; skipped ones never started


def on_changes_committed(sender, changes, **kwargs):
    """Count a batch of runs' changes, on the live publisher's thread: the Redis round trip held up
    every run's start and, in the outcome writer, the calls of the next steps."""
    live.hand_off(record_changes, changes)


def record_changes(changes):
    """Count runs' changes in one Redis round trip (the journal timed the steps' ends)."""
    if time.monotonic() < recorder._skip_until.get(settings.REDIS_URL, 0.0):
        return
    counts = Counter()
    sums = Counter()
    for change in changes:
        if not change.step_id:
            if change.status in COUNTED_ENDS:
                counts[RUNS_KEY, f"{change.status}|{change.payload['workflow']}"] += 1
            elif change.status == RunStatus.RUNNING and change.reason == STARTED:
                counts[RUNS_KEY, f"{STARTED}|{change.payload['workflow']}"] += 1
            elif change.status == RunStatus.RUNNING and change.reason.startswith(RETRIED_FROM_STEP):
                counts[RUNS_KEY, f"{RETRIED}|{change.payload['workflow']}"] += 1
        elif change.status in TIMED_ENDS and _timed(change.seconds):
            counts[STEP_SECONDS_KEY, f"{change.kind}|b{_bucket(change.seconds)}"] += 1
            counts[STEP_SECONDS_KEY, f"{change.kind}|count"] += 1
            sums[f"{change.kind}|sum"] += change.seconds
    if not counts:
        return
    pipe = recorder.client().pipeline(transaction=False)
    for (key, field), increment in counts.items():
        pipe.hincrby(key, field, increment)
    for field, total in sums.items():
        pipe.hincrbyfloat(STEP_SECONDS_KEY, field, total)
    recorder._execute(pipe)


def _timed(seconds):
    return seconds is not None and math.isfinite(seconds) and seconds >= 0


def _bucket(seconds):
    return next((i for i, bound in enumerate(STEP_BUCKETS) if seconds <= bound), len(STEP_BUCKETS))


def redis_series(client):
    """The counters and the histogram, read back from Redis (raises RedisError when it is down)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(RUNS_KEY)
    pipe.hgetall(STEP_SECONDS_KEY)
    runs_raw, steps_raw = pipe.execute()
    family = CounterMetricFamily(
        "orchestrator_workflow_runs_total",
        "Workflow runs started, retried from a step, and ended, by status.",
        labels=["status", "workflow"],
    )
    for field, value in sorted(runs_raw.items()):
        status, _, workflow = field.decode().partition("|")
        family.add_metric([status, workflow], int(value))
    yield family
    per_kind = {}
    for field, value in steps_raw.items():
        kind, _, name = field.decode().partition("|")
        per_kind.setdefault(kind, {})[name] = value
    histogram = HistogramMetricFamily(
        "orchestrator_workflow_step_seconds",
        "Workflow step time from start to end, by kind.",
        labels=["kind"],
    )
    for kind, raw in sorted(per_kind.items()):
        buckets, running = [], 0
        for index, bound in enumerate((*STEP_BUCKETS, math.inf)):
            running += int(raw.get(f"b{index}", 0))
            buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), running))
        histogram.add_metric([kind], buckets, sum_value=float(raw.get("sum", 0.0)))
    yield histogram


def active_runs_gauge():
    gauge = GaugeMetricFamily(
        "orchestrator_workflow_runs_active",
        "Workflow runs not yet ended (running, paused, cancelling), by workflow.",
        labels=["workflow"],
    )
    rows = (
        WorkflowRun.objects.filter(status__in=RUN_ACTIVE)
        .order_by()
        .values_list("definition__name")
        .annotate(n=Count("run_id"))
    )
    for name, count in sorted(rows):
        gauge.add_metric([name], count)
    return gauge
