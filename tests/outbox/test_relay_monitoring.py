"""The relay's lag, leader and counters in /metrics, /health/detailed and /status."""

from datetime import timedelta

from django.utils import timezone

from orchestrator_project.outbox.models import OutboxEvent
from orchestrator_project.outbox.sinks.redis_streams import RedisStreamSink
from tasks import services
from tests.outbox.test_outbox_writes import valid
from tests.tasks.conftest import wait_until


def metric(body, name):
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_a_lagging_relay_shows_in_metrics_health_and_status(
    transactional_db, client, viewer_client, settings
):
    settings.EVENT_RELAY_LAG_DEGRADED_SECONDS = 60
    services.create_tasks_bulk(items=[valid()] * 3)
    OutboxEvent.objects.filter(position=OutboxEvent.objects.order_by("position").first().position).update(
        created_at=timezone.now() - timedelta(minutes=3)
    )

    body = client.get("/metrics").content.decode()
    assert metric(body, "orchestrator_event_relay_unpublished_events") == 3
    assert 170 < metric(body, "orchestrator_event_relay_lag_seconds") < 600
    assert metric(body, "orchestrator_event_relay_leader") == 0
    assert metric(body, "orchestrator_events_published_total") == 0

    relay = client.get("/health/detailed").json()["checks"]["event_relay"]
    assert (relay["status"], relay["state"], relay["unpublished"], relay["leader"]) == (
        "degraded",
        "lagging",
        3,
        False,
    )
    assert viewer_client.get("/status").json()["events"]["state"] == "lagging"


def test_a_relay_that_keeps_up_is_ok_and_counts_what_it_published(topics, start_relay, client):
    services.create_tasks_bulk(items=[valid()] * 4)
    start_relay(RedisStreamSink())
    wait_until(
        lambda: "orchestrator_events_published_total 4.0" in client.get("/metrics").content.decode(),
        message="the relay's count in /metrics",
    )
    body = client.get("/metrics").content.decode()
    assert metric(body, "orchestrator_event_relay_unpublished_events") == 0
    assert metric(body, "orchestrator_event_relay_leader") == 1
    relay = client.get("/health/detailed").json()["checks"]["event_relay"]
    assert (relay["status"], relay["state"], relay["leader"]) == ("ok", "ok", True)


def test_with_the_sink_off_the_relay_is_reported_off(db, client, settings):
    settings.EVENT_SINK = "none"
    assert client.get("/health/detailed").json()["checks"]["event_relay"]["status"] == "ok"
    assert "orchestrator_event_relay_lag_seconds" not in client.get("/metrics").content.decode()
