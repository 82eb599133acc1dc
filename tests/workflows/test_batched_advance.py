"""The outcome writer's batch advances all its runs together: as many statements for 20 runs as for
one, every run's steps and events as if each had advanced alone, and one run's bug kept to that run."""

import json
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orchestrator_project.outbox.models import OutboxEvent
from tasks import services
from tasks.models import Task
from tasks.transitions import EndedStepTask
from workflows import advancing, definitions, engine
from workflows.models import StepRun, WorkflowEvent, WorkflowRun

from .helpers import start

CHAIN = [
    {"id": "a", "task_type": "work", "input": {"n": {"$path": "$.input.n"}}},
    {"id": "b", "depends_on": ["a"], "task_type": "work", "input": {"prev": {"$path": "$.steps.a.output"}}},
    {"id": "c", "depends_on": ["b"], "task_type": "work"},
]
FAN_IN = [
    {"id": "left", "task_type": "work"},
    {"id": "right", "task_type": "work"},
    {"id": "join", "depends_on": ["left", "right"], "task_type": "work"},
]


def ended(step, *, status="completed", result=None):
    return EndedStepTask(
        task_id=step.task_id,
        attempt=1,
        step_run_id=step.pk,
        status=status,
        result_json=None if result is None else json.dumps(result),
        error_json=None,
    )


def running_step(run_id, step_id):
    return StepRun.objects.get(run_id=run_id, step_id=step_id, map_index=-1, status="running")


def advance_statements(operator_client, runs):
    """Start `runs` chains, end each one's first step in one batch; the statements that took."""
    run_ids = [start(operator_client, "chain", {"n": n}) for n in range(runs)]
    batch = [ended(running_step(run_id, "a"), result={"n": n}) for n, run_id in enumerate(run_ids)]
    definitions._CACHE.clear()  # both measured with the definition read once
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        advancing.on_step_tasks_ended(batch)
    return run_ids, len(queries.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_twenty_runs_advance_in_as_many_statements_as_one(operator_client, define):
    define("chain", CHAIN)
    _, alone = advance_statements(operator_client, 1)
    _, most_in_one_insert = advance_statements(operator_client, services.INSERT_MAX_ROWS)
    run_ids, together = advance_statements(operator_client, 20)
    # Locks, steps, joins, new tasks, step rows and events: each one statement for the whole batch.
    assert most_in_one_insert == alone, (alone, most_in_one_insert)
    # Past INSERT_MAX_ROWS the new tasks go by COPY (not captured), then their events and the ring.
    assert together == alone + 1, (alone, together)
    # And few: a savepoint and its release, the runs' lock (which finds them from the step rows), the
    # definition, the steps, the join, the new tasks (one INSERT with their events and the dispatch
    # ring), and one statement for the step rows (whatever each changed), the runs' and the journal.
    assert alone == 8, alone
    for n, run_id in enumerate(run_ids):
        b = running_step(run_id, "b")
        assert b.input == {"prev": {"n": n}}
        assert Task.objects.get(task_id=b.task_id).idempotency_key == f"{run_id}:b:0:1"
        assert StepRun.objects.get(run_id=run_id, step_id="a").output == {"n": n}
        rows = WorkflowEvent.objects.filter(run_id=run_id).order_by("id").values_list("step_id", "status")
        assert list(rows) == [("", "running"), ("a", "running"), ("a", "completed"), ("b", "running")]
        published = OutboxEvent.objects.filter(aggregatetype="workflow_run", aggregateid=run_id)
        # Each run's events numbered in its own sequence, with no gap, in the order they happened.
        assert [
            (e.sequence, e.payload.get("step_id", ""), e.payload["status"])
            for e in published.order_by("sequence")
        ] == [
            (1, "", "running"),
            (2, "a", "running"),
            (3, "a", "completed"),
            (4, "b", "running"),
        ]


@pytest.mark.django_db(transaction=True)
def test_runs_that_end_write_their_steps_runs_and_events_in_one_statement(operator_client, define):
    define("pair", CHAIN[:2])
    run_ids = [start(operator_client, "pair", {"n": n}) for n in range(3)]
    for n, run_id in enumerate(run_ids):
        with transaction.atomic():
            advancing.on_step_tasks_ended([ended(running_step(run_id, "a"), result={"n": n})])
    # Two of the three runs end in this batch (their last step), one fails (a failed last step).
    batch = [
        ended(running_step(run_ids[0], "b"), result={"done": 0}),
        ended(running_step(run_ids[1], "b"), status="failed"),
        ended(running_step(run_ids[2], "b"), result={"done": 2}),
    ]
    definitions._CACHE.clear()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        advancing.on_step_tasks_ended(batch)
    writes = [q["sql"] for q in queries.captured_queries if "workflows_workflowevent" in q["sql"]]
    # The journal's statement carries the step rows' UPDATE and one UPDATE per set of run fields.
    assert len(writes) == 1
    assert writes[0].count("UPDATE workflows_steprun") == 1
    assert writes[0].count("UPDATE workflows_workflowrun") >= 1
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE workflows_")]
    runs = {run.run_id: run for run in WorkflowRun.objects.filter(run_id__in=run_ids)}
    assert [runs[uuid.UUID(r)].status for r in run_ids] == ["completed", "failed", "completed"]
    assert runs[uuid.UUID(run_ids[2])].finished_at is not None
    assert StepRun.objects.get(run_id=run_ids[0], step_id="b").output == {"done": 0}
    statuses = WorkflowEvent.objects.filter(run_id=run_ids[1]).order_by("id").values_list("status", flat=True)
    assert list(statuses)[-2:] == ["failed", "failed"]  # the step's, then the run's


@pytest.mark.django_db(transaction=True)
def test_two_parents_ending_in_one_batch_start_their_join_once(operator_client, define):
    define("fan-in", FAN_IN)
    run_id = start(operator_client, "fan-in")
    batch = [ended(running_step(run_id, "left")), ended(running_step(run_id, "right"))]
    with transaction.atomic():
        advancing.on_step_tasks_ended(batch)
    join = running_step(run_id, "join")
    assert join.remaining_parents == 0 and join.attempt == 1
    assert Task.objects.filter(workflow_step_id=join.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_or_stale_end_in_the_same_batch_advances_nothing(operator_client, define):
    define("chain", CHAIN)
    run_id = start(operator_client, "chain", {"n": 1})
    a = running_step(run_id, "a")
    stale = EndedStepTask(a.task_id.__class__(int=1), 1, a.pk, "completed", "{}", None)
    with transaction.atomic():
        advancing.on_step_tasks_ended([ended(a, result={"n": 1})])
        advancing.on_step_tasks_ended([ended(a, result={"n": 2}), stale])
    assert StepRun.objects.get(pk=a.pk).output == {"n": 1}
    assert Task.objects.filter(workflow_step_id=running_step(run_id, "b").pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_runs_bug_fails_that_run_and_the_others_advance(operator_client, define, monkeypatch):
    define("chain", CHAIN)
    healthy, broken = (start(operator_client, "chain", {"n": n}) for n in range(2))
    task_ended = engine.Advance.task_ended

    def buggy(self, step, end):
        if str(self.run.run_id) == broken:
            raise RuntimeError("a bug")
        return task_ended(self, step, end)

    monkeypatch.setattr(engine.Advance, "task_ended", buggy)
    batch = [ended(running_step(run_id, "a"), result={"n": 0}) for run_id in (healthy, broken)]
    with transaction.atomic():
        advancing.on_step_tasks_ended(batch)
    assert running_step(healthy, "b").input == {"prev": {"n": 0}}
    failed = engine.WorkflowRun.objects.get(run_id=broken)
    assert failed.status == "failed"
    assert "the workflow engine failed: RuntimeError: a bug" in failed.error["message"]
