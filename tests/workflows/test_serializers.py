"""The hand-written run representation must say exactly what DRF's generic one would.

RunSerializer writes its JSON straight from the row for speed (a run's start returns it); DRF's own
field-by-field path (`serializers.Serializer.to_representation`, which the declared fields drive) is
the reference, for a run as sparse as a start leaves it and one with every field set.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from workflows.definitions import create_definition
from workflows.models import RunStatus, StepRun, StepStatus, WorkflowEvent, WorkflowRun
from workflows.serializers import (
    RunCreateSerializer,
    RunDetailSerializer,
    RunListSerializer,
    RunSerializer,
)

pytestmark = pytest.mark.django_db

STEPS = [{"id": "only", "task_type": "summarize"}]


def _definition():
    definition, _, _ = create_definition(name="represented", spec={"steps": STEPS})
    return definition


def _sparse_run():
    now = timezone.now()
    return WorkflowRun.objects.create(definition=_definition(), created_at=now, updated_at=now)


def _full_run():
    definition = _definition()
    now = timezone.now()
    parent = WorkflowRun.objects.create(definition=definition, created_at=now, updated_at=now)
    parent_step = StepRun.objects.create(
        run=parent, step_id="only", kind="sub_workflow", status=StepStatus.RUNNING, created_at=now
    )
    run = WorkflowRun.objects.create(
        definition=definition,
        status=RunStatus.FAILED,
        input={"naïve": ["ünïcode", 1, 2.5, None, {"k": True}]},
        output={"partial": [1, 2]},
        error={"step": "only", "message": "it failed"},
        priority=9,
        parent_step=parent_step,
        depth=1,
        idempotency_key="key-1",
        created_at=now,
        updated_at=now + timedelta(seconds=1, microseconds=7),
        finished_at=now + timedelta(seconds=2),
    )
    StepRun.objects.create(
        run=run, step_id="only", kind="task", status=StepStatus.FAILED, attempt=2, created_at=now
    )
    WorkflowEvent.objects.create(run=run, step_id="only", status="failed", attempt=2, created_at=now)
    return run


def _generic(serializer, run):
    return serializers.Serializer.to_representation(serializer, run)


@pytest.mark.parametrize("make_run", [_sparse_run, _full_run], ids=["sparse", "full"])
@pytest.mark.parametrize(
    "serializer_class", [RunSerializer, RunListSerializer, RunDetailSerializer], ids=["run", "list", "detail"]
)
def test_fast_representation_equals_drfs(make_run, serializer_class):
    run = WorkflowRun.objects.get(pk=make_run().pk)
    fast = serializer_class(run).data
    assert fast == _generic(serializer_class(run), WorkflowRun.objects.get(pk=run.pk))
    assert list(fast) == serializer_class.Meta.fields


def test_a_full_runs_representation_names_its_parent_and_its_times_in_utc():
    data = RunSerializer(_full_run()).data
    assert data["parent_run_id"] is not None and data["parent_run_id"] != data["run_id"]
    assert data["finished_at"].endswith("Z") and data["workflow"] == "represented"


def test_many_runs_take_the_fast_path_too():
    runs = [_sparse_run(), _full_run()]
    listed = RunListSerializer(runs, many=True).data
    assert [dict(item) for item in listed] == [_generic(RunListSerializer(run), run) for run in runs]


@pytest.mark.parametrize(
    "body",
    [
        {"workflow": "w"},
        {"workflow": "w", "version": 2, "input": {"x": 1}, "priority": 9},
        {"workflow": "w", "version": None},
        {"workflow": 12},
        {"workflow": "w", "priority": "5"},
        {"workflow": "w", "priority": 11},
        {"workflow": "w", "input": []},
        {"workflow": "w", "status": "completed"},
        {},
    ],
)
def test_each_create_body_gets_the_fields_own_copy_and_the_same_verdict_twice(body):
    # The fields are shallow copies of the declared ones (PrototypeFieldsMixin): one body's
    # validation must not leave anything behind in the next serializer's fields.
    first, second = RunCreateSerializer(data=body), RunCreateSerializer(data=body)
    assert first.is_valid() == second.is_valid()
    assert first.errors == second.errors
    if first.errors:
        assert set(first.errors) <= {"workflow", "version", "input", "priority", "status"}
    else:
        assert first.validated_data == second.validated_data
    assert first.fields["workflow"] is not second.fields["workflow"]
    assert first.fields["workflow"].parent is first
