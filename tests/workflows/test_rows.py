"""workflows.rows.update_rows: rows that changed different fields written in one statement, each row
keeping what it did not change, and a deferred field never read to be written back."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from workflows.models import StepRun
from workflows.rows import update_rows

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
        update_rows(
            StepRun,
            [a, b],
            ["decided_by", "output", "remaining_parents"],
            changed=[{"output"}, {"remaining_parents", "decided_by"}],
        )
    # One UPDATE, and no read of a's deferred input nor b's deferred output to write them back.
    assert len(queries.captured_queries) == 1, [q["sql"][:80] for q in queries.captured_queries]
    a, b = StepRun.objects.filter(run_id=run_id, map_index=-1).order_by("step_id")
    assert (a.output, a.input, a.remaining_parents, a.decided_by) == ({"done": True}, {"n": 7}, 0, "")
    assert (b.output, b.remaining_parents, b.decided_by) == (None, 0, "someone")
