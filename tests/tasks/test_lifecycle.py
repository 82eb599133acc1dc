"""The task lifecycle: one table of transitions, one function that writes them, and what each leaves
behind (the task row, its event row, a live message; a failure notice)."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks import services
from tasks.models import (
    LIFECYCLE,
    TERMINAL_STATUSES,
    EventKind,
    Task,
    TaskEvent,
    TaskStatus,
)
from tasks.serializers import plainly_valid_task
from tasks.signals import tasks_failed
from tasks.transitions import Step, move


def running_task(**fields):
    return Task.objects.create(
        type="t", required_capabilities=["t"], status=TaskStatus.RUNNING, attempts=2, **fields
    )


def test_every_event_kind_is_one_transition_and_every_status_is_reachable():
    assert set(LIFECYCLE) == set(EventKind)
    assert {move.target for move in LIFECYCLE.values()} == set(TaskStatus)
    # Only an operator's requeue leaves a terminal status.
    leaving_the_end = {kind for kind, move in LIFECYCLE.items() if set(move.sources) & set(TERMINAL_STATUSES)}
    assert leaving_the_end == {EventKind.REQUEUED}


def test_a_move_writes_the_task_and_its_event_in_one_statement_and_announces_it(
    db, published, django_capture_on_commit_callbacks
):
    task = running_task()
    agent_id = uuid.uuid4()
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        [moved] = move(
            EventKind.COMPLETED,
            [Step(task.task_id, 2, agent_id, details={"latency_ms": 12}, call_outcome="success")],
            now=now,
            assignments="finished_at = %(now)s",
        )
    assert len(queries) == 1
    task.refresh_from_db()
    assert (task.status, task.finished_at) == (TaskStatus.COMPLETED, now)
    event = TaskEvent.objects.get(task=task)
    assert (event.kind, event.status, event.attempt, event.agent_id) == (
        "completed",
        "completed",
        2,
        agent_id,
    )
    assert (event.details, event.created_at) == ({"latency_ms": 12}, now)
    [message] = published(1)
    assert message["task_id"] == str(task.task_id) and message["kind"] == "completed"
    assert message["status"] == "completed" and message["agent_id"] == str(agent_id)
    assert message["agent_call_outcome"] == "success" and message["duration_seconds"] >= 0


def test_a_stale_attempt_or_a_status_the_transition_does_not_start_from_moves_nothing(
    db, django_capture_on_commit_callbacks
):
    task = running_task()
    now = timezone.now()
    with django_capture_on_commit_callbacks() as announcements:
        assert move(EventKind.COMPLETED, [Step(task.task_id, attempt=1)], now=now) == []
        assert move(EventKind.REQUEUED, [Step(task.task_id, attempt=2)], now=now) == []
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING
    assert not TaskEvent.objects.filter(task=task).exists()
    assert announcements == []


def test_a_batch_moves_the_tasks_that_qualify_and_names_each(db):
    moving, stale = running_task(), running_task()
    now = timezone.now()
    moved = move(
        EventKind.RETRYING,
        [Step(moving.task_id, 2, reason="first"), Step(stale.task_id, 1, reason="second")],
        now=now,
    )
    assert [(m.task_id, m.step.reason) for m in moved] == [(moving.task_id, "first")]
    assert TaskEvent.objects.get(task=moving).reason == "first"


def test_a_failure_for_good_is_told_to_listeners_with_its_error(db):
    task = running_task(error={"message": "boom"})
    heard = []

    def listener(failures, **_):
        heard.extend(failures)

    tasks_failed.connect(listener)
    try:
        move(EventKind.FAILED, [Step(task.task_id, 2, reason="retries exhausted")], now=timezone.now())
    finally:
        tasks_failed.disconnect(listener)
    assert heard == [
        {
            "task_id": task.task_id,
            "type": "t",
            "attempts": 2,
            "reason": "retries exhausted",
            "error": {"message": "boom"},
        }
    ]


@pytest.mark.parametrize("size", [3, services.INSERT_MAX_ROWS + 1], ids=["insert", "copy"])
def test_creation_leaves_an_event_row_one_at_a_time_and_in_bulk(
    db, published, django_capture_on_commit_callbacks, size
):
    with django_capture_on_commit_callbacks(execute=True):
        single, _ = services.create_task(data=plainly_valid_task({"type": "t"}))
        bulk = services.create_tasks_bulk(items=[plainly_valid_task({"type": "t"})] * size)
    for task in [single, *bulk]:
        event = TaskEvent.objects.get(task=task)
        assert (event.kind, event.status, event.attempt, event.agent_id) == ("created", "pending", 0, None)
        assert event.created_at == task.created_at
    assert sorted(m["task_id"] for m in published(size + 1) if m["kind"] == "created") == sorted(
        str(t.task_id) for t in [single, *bulk]
    )
