"""Counters and histograms shared by every process (web and workers), kept in Redis.

prometheus_client's in-process registry cannot see what a Celery worker counted, so the events that
`orchestrator_project.live` publishes are also counted here, one pipeline per batch (HINCRBY / HINCRBYFLOAT),
and `/metrics` reads the totals back. Per-10-second buckets of finished tasks feed the dashboard's charts.

Metrics are best effort: when Redis is unreachable we log once, stop trying for a few seconds, and never
hold up the transition that produced the event.
"""

import logging
import math
import time
from collections import Counter
from functools import lru_cache

import redis
from django.conf import settings
from redis.exceptions import RedisError

from tasks.models import EventKind

logger = logging.getLogger(__name__)

PREFIX = "orchestrator:metrics:v1"
COUNTERS_KEY = f"{PREFIX}:counters"
HISTOGRAM_KEYS = {
    "task_duration_seconds": f"{PREFIX}:hist:task_duration_seconds",
    "dispatch_latency_seconds": f"{PREFIX}:hist:dispatch_latency_seconds",
}
# Upper bounds in seconds; an implicit +Inf bucket follows. Tasks run from milliseconds to minutes.
BUCKETS = {
    "task_duration_seconds": (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    "dispatch_latency_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
}
# The dashboard's throughput chart: counts of event kinds per RATE_BUCKET_SECONDS, kept for RATE_KEEP_SECONDS.
RATE_BUCKET_SECONDS = 10
RATE_KEEP_SECONDS = 2 * 3600
RATE_KINDS = (
    EventKind.CREATED,
    EventKind.COMPLETED,
    EventKind.FAILED,
    EventKind.CANCELLED,
    EventKind.RETRYING,
)

# After a Redis error, metrics are dropped (not queued) for this long so a dead Redis costs callers nothing.
_BACKOFF_SECONDS = 5.0
_skip_until = {}  # Redis URL -> monotonic time before which we do not try again


@lru_cache(maxsize=4)
def _client(url):
    # Short timeouts, unlike the shared client: this runs right after a commit, on the request's path.
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30)


def client():
    return _client(settings.REDIS_URL)


def bucket_index(name, value):
    for index, bound in enumerate(BUCKETS[name]):
        if value <= bound:
            return index
    return len(BUCKETS[name])


def _counter_field(metric, label):
    return f"{metric}|{label}"


def record_task_transitions(transitions):
    """Count a batch of transitions in one round trip, summed per field first: a batch of 500 events
    becomes a dozen HINCRBYs, not 2,500."""
    if not transitions or time.monotonic() < _skip_until.get(settings.REDIS_URL, 0.0):
        return
    now = time.time()
    rate_key = f"{PREFIX}:rate:{int(now // RATE_BUCKET_SECONDS) * RATE_BUCKET_SECONDS}"
    counts = Counter()  # (key, field) -> increment
    sums = Counter()  # histogram key -> sum of observed values
    for event in transitions:
        status, kind = event.get("status"), event.get("kind")
        if status:
            counts[COUNTERS_KEY, _counter_field("tasks_total", status)] += 1
        if kind:
            counts[COUNTERS_KEY, _counter_field("task_events_total", kind)] += 1
            if kind in RATE_KINDS:
                counts[rate_key, kind] += 1
        outcome = event.get("agent_call_outcome")
        if outcome:
            counts[COUNTERS_KEY, _counter_field("agent_calls_total", outcome)] += 1
        if event.get("failover_seconds") is not None:
            counts[COUNTERS_KEY, _counter_field("task_failovers_total", outcome or "unknown")] += 1
        for name, field in (
            ("task_duration_seconds", "duration_seconds"),
            ("dispatch_latency_seconds", "dispatch_latency_seconds"),
        ):
            value = event.get(field)
            if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
                key = HISTOGRAM_KEYS[name]
                counts[key, f"b{bucket_index(name, value)}"] += 1
                counts[key, "count"] += 1
                sums[key] += value
    pipe = client().pipeline(transaction=False)
    for (key, field), increment in counts.items():
        pipe.hincrby(key, field, increment)
    for key, total in sums.items():
        pipe.hincrbyfloat(key, "sum", total)
    if any(key == rate_key for key, _ in counts):
        pipe.expire(rate_key, RATE_KEEP_SECONDS)
    _execute(pipe)


def _execute(pipe):
    try:
        pipe.execute()
    except RedisError:
        _skip_until[settings.REDIS_URL] = time.monotonic() + _BACKOFF_SECONDS
        logger.warning("Redis unavailable: dropping metrics for %.0f s", _BACKOFF_SECONDS, exc_info=True)


def _split_counters(raw):
    counters = {}
    for field, value in raw.items():
        metric, _, label = field.decode().partition("|")
        counters.setdefault(metric, {})[label] = int(value)
    return counters


def read_all():
    """Counters as {metric: {label: n}} and histograms as {name: (cumulative buckets, sum, count)}."""
    pipe = client().pipeline(transaction=False)
    pipe.hgetall(COUNTERS_KEY)
    for key in HISTOGRAM_KEYS.values():
        pipe.hgetall(key)
    counters_raw, *histograms_raw = pipe.execute()
    histograms = {}
    for name, raw in zip(HISTOGRAM_KEYS, histograms_raw, strict=True):
        raw = {key.decode(): value for key, value in raw.items()}
        bounds = BUCKETS[name]
        cumulative, running = [], 0
        for index, bound in enumerate((*bounds, math.inf)):
            running += int(raw.get(f"b{index}", 0))
            cumulative.append((bound, running))
        histograms[name] = (cumulative, float(raw.get("sum", 0.0)), int(raw.get("count", 0)))
    return _split_counters(counters_raw), histograms


def read_rates(seconds=15 * 60, *, now=None):
    """[(bucket start, {kind: n})] over the last `seconds`, oldest first, zeros where nothing happened."""
    now = time.time() if now is None else now
    last = int(now // RATE_BUCKET_SECONDS) * RATE_BUCKET_SECONDS
    starts = list(range(last - seconds + RATE_BUCKET_SECONDS, last + 1, RATE_BUCKET_SECONDS))
    pipe = client().pipeline(transaction=False)
    for start in starts:
        pipe.hgetall(f"{PREFIX}:rate:{start}")
    rows = []
    for start, raw in zip(starts, pipe.execute(), strict=True):
        counts = {kind: 0 for kind in RATE_KINDS}
        counts.update({key.decode(): int(value) for key, value in raw.items()})
        rows.append((start, counts))
    return rows
