"""`GET /metrics`: django-prometheus' own series plus the orchestrator's, correct across processes.

Gauges are read from the database at scrape time (what is true now, whichever process changed it).
Counters and histograms come from Redis, where every process adds what it published (see recorder.py):
a Celery worker's completed tasks are counted even though its own prometheus registry is never scraped.

Access: `Authorization: Bearer <METRICS_TOKEN>` or a client address in METRICS_ALLOWED_NETWORKS.
"""

import hmac
import ipaddress
import logging

import prometheus_client
from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis.exceptions import RedisError

from orchestrator_project.accounts.authentication import parse_bearer

from . import beat, event_relay, queries, recorder, workflow_metrics

logger = logging.getLogger(__name__)

COUNTERS = {
    "tasks_total": ("orchestrator_tasks_total", "Task transitions into each status.", "status"),
    "task_events_total": ("orchestrator_task_events_total", "Task events by kind.", "kind"),
    "agent_calls_total": ("orchestrator_agent_calls_total", "Calls to agents by outcome.", "outcome"),
    "task_failovers_total": (
        "orchestrator_task_failovers_total",
        "Retries sent at once to agents not yet tried, after a refusal (503, 429, no connection).",
        "outcome",
    ),
}
HISTOGRAMS = {
    "task_duration_seconds": (
        "orchestrator_task_duration_seconds",
        "Time from creation to a terminal status.",
    ),
    "dispatch_latency_seconds": (
        "orchestrator_dispatch_latency_seconds",
        "Time from creation to being sent to an agent.",
    ),
}


RELAY_COUNTERS = [
    ("published", "orchestrator_events_published_total", "Events the relay published (acknowledged)."),
    ("replayed", "orchestrator_events_replayed_total", "Events published again by replays."),
    ("failures", "orchestrator_event_relay_failures_total", "Relay batches the sink did not take."),
]


def _relay_gauges():
    state = event_relay.relay_state()
    if state["state"] == "off":
        return
    yield GaugeMetricFamily(
        "orchestrator_event_relay_lag_seconds",
        "Age of the oldest event not yet published (0 when none waits).",
        value=state["lag_seconds"],
    )
    yield GaugeMetricFamily(
        "orchestrator_event_relay_unpublished_events",
        "Events written but not yet published.",
        value=state["unpublished"],
    )
    yield GaugeMetricFamily(
        "orchestrator_event_relay_leader", "1 if a relay holds the leader's lock.", value=int(state["leader"])
    )


def _route_gauges():
    """What routing learned, per agent and capability: a series per pair that exists now (a removed
    agent's pairs go with it)."""
    labels = ["agent_id", "agent", "capability"]
    latency = GaugeMetricFamily(
        "orchestrator_agent_learned_latency_ms",
        "Peak-sensitive moving average of an agent's call latency on a capability, failures penalised.",
        labels=labels,
    )
    success = GaugeMetricFamily(
        "orchestrator_agent_learned_success_rate",
        "Time-decayed success rate of an agent's calls on a capability.",
        labels=labels,
    )
    for route in queries.learned_routes():
        key = [route["agent_id"], route["agent"], route["capability"]]
        latency.add_metric(key, route["latency_ms"])
        success.add_metric(key, route["success_rate"])
    yield latency
    yield success


class OrchestratorCollector:
    """Collected per scrape; not registered globally, so importing it never touches the database."""

    def collect(self):
        now = timezone.now()
        yield from self._database_gauges(now)
        yield from self._redis_series()

    def _database_gauges(self, now):
        tasks = GaugeMetricFamily("orchestrator_tasks", "Tasks currently in each status.", labels=["status"])
        for status, count in queries.tasks_by_status().items():
            tasks.add_metric([status], count)
        yield tasks
        agents = GaugeMetricFamily(
            "orchestrator_agents", "Agents currently in each status.", labels=["status"]
        )
        for status, count in queries.agents_by_status().items():
            agents.add_metric([status], count)
        yield agents
        yield GaugeMetricFamily(
            "orchestrator_agent_circuit_open",
            "Agents whose circuit breaker is open.",
            value=queries.agents_with_open_circuit(),
        )
        yield from _route_gauges()
        depth = GaugeMetricFamily(
            "orchestrator_queue_depth", "Pending tasks per required capability.", labels=["capability"]
        )
        age = GaugeMetricFamily(
            "orchestrator_queue_oldest_age_seconds",
            "Age of the oldest pending task per required capability.",
            labels=["capability"],
        )
        for capability, row in queries.queue_depth(now=now).items():
            depth.add_metric([capability], row["depth"])
            age.add_metric([capability], row["oldest_age_seconds"])
        yield depth
        yield age
        yield workflow_metrics.active_runs_gauge()
        yield from _relay_gauges()
        info = GaugeMetricFamily("orchestrator_info", "Version of the running service.", labels=["version"])
        info.add_metric([settings.VERSION], 1)
        yield info

    def _redis_series(self):
        up = GaugeMetricFamily(
            "orchestrator_metrics_store_up",
            "1 if the shared counters could be read from Redis at this scrape.",
        )
        try:
            counters, histograms = recorder.read_all()
            workflow_series = list(workflow_metrics.redis_series(recorder.client()))
            beat_state = beat.beat_state()
        except RedisError:
            logger.warning("metrics store unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for key, (name, documentation, label) in COUNTERS.items():
            family = CounterMetricFamily(name, documentation, labels=[label])
            for value, count in sorted(counters.get(key, {}).items()):
                family.add_metric([value], count)
            yield family
        for key, (name, documentation) in HISTOGRAMS.items():
            cumulative, total, count = histograms[key]
            buckets = [("+Inf" if bound == float("inf") else _bound(bound), n) for bound, n in cumulative]
            family = HistogramMetricFamily(name, documentation)
            family.add_metric([], buckets, sum_value=total)
            yield family
        yield from workflow_series
        relay = event_relay.relay_counters()
        for key, name, documentation in RELAY_COUNTERS:
            yield CounterMetricFamily(name, documentation, value=relay[key])
        if beat_state["last_sweep_age_seconds"] is not None:
            yield GaugeMetricFamily(
                "orchestrator_beat_last_sweep_age_seconds",
                "Seconds since the most recent periodic sweep ran.",
                value=beat_state["last_sweep_age_seconds"],
            )


def _bound(value):
    return repr(float(value))


def metrics_allowed(request):
    token = settings.METRICS_TOKEN
    raw = parse_bearer(request.headers.get("Authorization", ""))
    if token and raw and hmac.compare_digest(raw.encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics(request):
    if not metrics_allowed(request):
        return HttpResponseForbidden(
            "metrics: token or allowed network required\n", content_type="text/plain"
        )
    body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
    body += prometheus_client.generate_latest(OrchestratorCollector())
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
