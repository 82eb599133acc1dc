"""Operators replay past events (a window, or one entity's) with their original ids and sequences;
published events past retention are pruned by beat, unpublished ones never; the admin shows the lag."""

from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from orchestrator_project.outbox import relay as relay_module
from orchestrator_project.outbox.jobs import prune_outbox
from orchestrator_project.outbox.models import OutboxEvent, Replay
from orchestrator_project.outbox.sinks.redis_streams import RedisStreamSink
from tasks import services
from tests.outbox.test_outbox_writes import valid
from tests.outbox.test_relay_floor import RecordingSink
from tests.tasks.conftest import wait_until

URL = "/api/v1/events/replay"


def stream_entries(stream):
    client = redis.Redis.from_url(settings.REDIS_URL)
    entries = client.xrange(stream)
    client.close()
    return [{key.decode(): value.decode() for key, value in fields.items()} for _, fields in entries]


def all_published():
    return not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_an_operator_replays_a_window_with_the_original_ids_and_sequences(
    topics, start_relay, operator_client
):
    before = services.create_tasks_bulk(items=[valid()] * 3)
    start = timezone.now()
    during = services.create_tasks_bulk(items=[valid()] * 2)
    start_relay(RedisStreamSink())
    wait_until(all_published, message="the relay to publish everything")

    response = operator_client.post(URL, {"since": start.isoformat()}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["events"] == 2
    replay = Replay.objects.get(pk=response.json()["replay_id"])
    assert replay.requested_by == "olivia-operator"
    wait_until(lambda: Replay.objects.get(pk=replay.pk).finished_at, message="the replay to finish")

    sent = [(e["key"], e["ce_id"], e["ce_sequence"]) for e in stream_entries(topics["task"])]
    first_time, again = sent[:5], sent[5:]
    during_ids = {str(t.task_id) for t in during}
    # The window's events once more, the same ids and sequences; nothing from before it.
    assert sorted(again) == sorted(s for s in first_time if s[0] in during_ids)
    assert {key for key, _, _ in first_time} == during_ids | {str(t.task_id) for t in before}


def test_one_entitys_events_can_be_replayed(topics, start_relay, operator_client):
    task, _ = services.create_task(data=valid())
    services.cancel_task(task_id=task.task_id)
    services.create_task(data=valid())
    start_relay(RedisStreamSink())
    wait_until(all_published, message="the relay to publish everything")

    response = operator_client.post(URL, {"aggregate_id": str(task.task_id)}, format="json")
    assert response.status_code == 202 and response.json()["events"] == 2
    wait_until(lambda: Replay.objects.get().finished_at, message="the replay to finish")
    sent = [(e["key"], e["ce_sequence"]) for e in stream_entries(topics["task"])]
    assert sent[3:] == [(str(task.task_id), "1"), (str(task.task_id), "2")]


def test_with_no_replay_in_progress_the_relay_looks_for_one_only_every_so_often(
    start_relay, operator_client, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(relay_module, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))
    sink = RecordingSink()
    start_relay(sink)

    def published(task):
        return lambda: str(task.task_id) in {str(event.aggregateid) for event in sink.events}

    first, _ = services.create_task(data=valid())
    wait_until(published(first), message="the relay to publish the first task's event")
    response = operator_client.post(URL, {"aggregate_id": str(first.task_id)}, format="json")
    assert response.status_code == 202
    # Two more polls (each publishes, then may look for a replay): with the clock standing still, the
    # relay found no replay at its last look and does not look again yet.
    for _ in range(2):
        task, _ = services.create_task(data=valid())
        wait_until(published(task), message="the relay to publish a later task's event")
    assert Replay.objects.get().finished_at is None
    live = len(sink.events)

    now[0] += relay_module.REPLAY_LOOK_SECONDS
    wait_until(lambda: Replay.objects.get().finished_at, message="the replay to finish")
    assert {str(event.aggregateid) for event in sink.events[live:]} == {str(first.task_id)}


def test_a_replay_needs_a_window_or_an_entity_and_says_which_field_is_wrong(db, operator_client):
    cases = [
        ({}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"aggregate_id": "not-a-uuid"}, "aggregate_id"),
        ({"since": "2026-01-01T00:00:00Z", "topic": "x"}, "topic"),
    ]
    for body, field in cases:
        response = operator_client.post(URL, body, format="json")
        assert response.status_code == 400, body
        assert field in response.json(), response.json()
    assert not Replay.objects.exists()


def test_viewers_may_not_replay(db, viewer_client):
    assert viewer_client.post(URL, {"since": timezone.now().isoformat()}, format="json").status_code == 403


def test_retention_prunes_published_events_and_never_unpublished_ones(db, settings):
    settings.EVENT_RETENTION_DAYS = 7
    services.create_tasks_bulk(items=[valid()] * 4)
    old = timezone.now() - timedelta(days=8)
    OutboxEvent.objects.update(created_at=old)
    first_two = list(OutboxEvent.objects.order_by("position").values_list("position", flat=True)[:2])
    OutboxEvent.objects.filter(position__in=first_two).update(published_at=old)
    services.create_task(data=valid())  # recent

    assert prune_outbox() == 2
    assert OutboxEvent.objects.count() == 3
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 3


def test_beat_runs_the_retention_job_hourly(db):
    schedule = PeriodicTask.objects.get(task="orchestrator_project.outbox.jobs.prune_outbox")
    assert (schedule.enabled, schedule.interval.every, schedule.interval.period) == (True, 3600, "seconds")


def test_the_admin_shows_the_relay_lag_and_the_oldest_unpublished_event(db, admin_client):
    services.create_tasks_bulk(items=[valid()] * 2)
    oldest = OutboxEvent.objects.order_by("position").first()
    OutboxEvent.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    page = admin_client.get("/admin/outbox/outboxevent/").content.decode()
    assert "No relay is running" in page
    assert "2 events waiting" in page and "5" in page and "minutes ago" in page


def test_the_outbox_is_vacuumed_after_every_few_thousand_published_rows(db):
    # The relay's partial index would otherwise keep a dead entry per published row for a long time.
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'outbox_event'")
        options = cursor.fetchone()[0]
    assert "autovacuum_vacuum_scale_factor=0" in options and "autovacuum_vacuum_threshold=5000" in options
