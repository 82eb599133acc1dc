"""workflows.rows: update_statement writes rows that changed different fields in one statement, each row
keeping what it did not change, and never reads a deferred field to write it back; RowLoader makes
from a raw SELECT the instances the ORM would."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from workflows.models import StepRun
from workflows.rows import RowLoader, execute_statement, update_statement

from .helpers import start

CHAIN = [
    {"id": "a", "task_type": "work", "input": {"n": {"$path": "$.input.n"}}},
    {"id": "b", "depends_on": ["a"], "task_type": "work"},
]


@pytest.mark.django_db(transaction=True)
def test_rows_that_changed_different_fields_take_one_statement_and_keep_the_rest(operator_client, define):
    define("chain", CHAIN)
    run_id = start(operator_client, "chain", {"n": 7})
    a, b = StepRun.objects.filter(run_id=run_id, map_index=-1).defer("input", "output").order_by("step_id")
    a.output, b.remaining_parents, b.decided_by = {"done": True}, 0, "someone"
    with CaptureQueriesContext(connection) as queries:
        execute_statement(
            update_statement(
                StepRun,
                [a, b],
                ["decided_by", "output", "remaining_parents"],
                changed=[{"output"}, {"remaining_parents", "decided_by"}],
            )
        )
    # One UPDATE, and no read of a's deferred input nor b's deferred output to write them back.
    assert len(queries.captured_queries) == 1, [q["sql"][:80] for q in queries.captured_queries]
    a, b = StepRun.objects.filter(run_id=run_id, map_index=-1).order_by("step_id")
    assert (a.output, a.input, a.remaining_parents, a.decided_by) == ({"done": True}, {"n": 7}, 0, "")
    assert (b.output, b.remaining_parents, b.decided_by) == (None, 0, "someone")


@pytest.mark.django_db(transaction=True)
def test_a_row_loader_makes_the_instances_the_orm_makes(operator_client, define):
    define("chain", CHAIN)
    run_id = start(operator_client, "chain", {"n": 7})
    StepRun.objects.filter(run_id=run_id, step_id="b").update(error={"message": "why", "codes": [1, 2]})
    loader = RowLoader(StepRun, deferred=("input", "output"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {loader.columns} FROM workflows_steprun WHERE run_id = %s", [run_id])
        loaded = {step.step_id: step for step in loader.instances(cursor.fetchall())}
    orm = {step.step_id: step for step in StepRun.objects.filter(run_id=run_id).defer("input", "output")}
    assert set(loaded) == {"a", "b"}
    for step_id, step in loaded.items():
        assert step.get_deferred_fields() == {"input", "output"}
        assert not step._state.adding
        for field in loader.fields:
            assert getattr(step, field.attname) == getattr(orm[step_id], field.attname), field.name
    assert loaded["b"].error == {"message": "why", "codes": [1, 2]}  # JSON decoded, as the ORM does
    assert loaded["a"].input == {"n": 7}  # a deferred field is read on first access
