"""The hand-written task representation must say exactly what DRF's generic one would.

TaskSerializer builds its JSON straight from the row for speed; here DRF's own field-by-field path
(`serializers.Serializer.to_representation`, which the declared fields drive) is the reference.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from agents.models import Agent
from tasks.models import Task, TaskEvent, TaskStatus
from tasks.serializers import TaskDetailSerializer, TaskListSerializer, TaskSerializer

pytestmark = pytest.mark.django_db


def _generic(serializer_class, task):
    serializer = serializer_class(task)
    return serializers.Serializer.to_representation(serializer, task)


def _sparse_task():
    return Task.objects.create(type="summarize", required_capabilities=["summarize"])


def _full_task():
    agent = Agent.objects.create(
        name="a", type="t", endpoint="http://127.0.0.1:9/x", capabilities=["summarize"], token_hash="h" * 64
    )
    now = timezone.now()
    task = Task.objects.create(
        type="summarize",
        description="naïve ünïcode",
        input_data={"nested": [1, 2.5, None, {"k": "v"}]},
        required_capabilities=["summarize", "ocr"],
        priority=9,
        status=TaskStatus.COMPLETED,
        assigned_agent=agent,
        result={"ok": True},
        error={"message": "earlier failure"},
        attempts=2,
        max_retries=4,
        timeout_seconds=30,
        deadline=now + timedelta(hours=1, microseconds=7),
        auto_dispatch=False,
        strategy="round_robin",
        idempotency_key="key-1",
        assigned_at=now,
        started_at=now,
        finished_at=now + timedelta(seconds=1),
        next_attempt_at=None,
        failover_until=now + timedelta(seconds=3, microseconds=11),
        lease_expires_at=now + timedelta(minutes=5),
    )
    TaskEvent.objects.create(
        task=task, kind="assigned", status="assigned", attempt=1, agent_id=agent.pk, created_at=now
    )
    TaskEvent.objects.create(
        task=task, kind="completed", status="completed", attempt=1, agent_id=agent.pk, created_at=now
    )
    return task


@pytest.mark.parametrize("make_task", [_sparse_task, _full_task], ids=["sparse", "full"])
@pytest.mark.parametrize("serializer_class", [TaskSerializer, TaskListSerializer], ids=["task", "list"])
def test_fast_representation_equals_drfs(make_task, serializer_class):
    task = Task.objects.get(pk=make_task().pk)
    assert serializer_class(task).data == _generic(serializer_class, task)
    assert list(serializer_class(task).data) == serializer_class.Meta.fields


@pytest.mark.parametrize("make_task", [_sparse_task, _full_task], ids=["sparse", "full"])
def test_detail_representation_equals_drfs(make_task):
    task = Task.objects.get(pk=make_task().pk)
    fast = TaskDetailSerializer(task).data
    assert fast == _generic(TaskDetailSerializer, Task.objects.get(pk=task.pk))
    assert list(fast) == TaskDetailSerializer.Meta.fields


def test_unknown_agent_id_and_uuid_rendering_are_text():
    task = Task.objects.get(pk=_full_task().pk)
    data = TaskSerializer(task).data
    assert data["task_id"] == str(task.task_id) and uuid.UUID(data["agent_id"])
    assert data["created_at"].endswith("Z")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_timestamps_are_written_as_drf_writes_them(zone):
    from datetime import UTC, datetime
    from datetime import timezone as dt_timezone

    from orchestrator_project.representation import datetime_text

    values = [
        datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC),
        datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 6, 1, 23, 59, 59, 1, tzinfo=dt_timezone(timedelta(hours=2))),
        datetime(2026, 11, 24, 1, 2, 3),  # naive: DRF's own path
    ]
    with timezone.override(zone):
        for value in values:
            assert datetime_text(value) == serializers.DateTimeField().to_representation(value)
    assert datetime_text(None) is None
