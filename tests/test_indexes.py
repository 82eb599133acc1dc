"""No index that only costs writes on the service's own tables.

A task's status changes are not HOT updates (status is indexed), so each one writes every index of
tasks_task; each event row writes every index of its table. An index whose columns lead another
index of the same table answers nothing the longer one does not, and a LIKE index (varchar_pattern_ops,
which Django adds to every unique CharField) serves no query of ids and keys matched whole.
"""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

APPS = ("tasks_", "agents_", "workflows_", "outbox_", "monitoring_", "accounts_")
# Written on every task, step or run: no LIKE index there.
WRITE_HOT = ("tasks_task", "tasks_taskevent", "workflows_workflowrun", "workflows_steprun", "outbox_event")

_INDEXES_SQL = """
    SELECT t.relname, i.relname, x.indisunique, x.indpred IS NOT NULL,
           ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.n),
           pg_get_indexdef(x.indexrelid)
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    JOIN pg_namespace AS s ON s.oid = t.relnamespace
    WHERE s.nspname = current_schema()
"""


def _indexes():
    with connection.cursor() as cursor:
        cursor.execute(_INDEXES_SQL)
        rows = cursor.fetchall()
    return [
        {"table": t, "name": n, "unique": u, "partial": p, "columns": list(c), "definition": d}
        for t, n, u, p, c, d in rows
        if t.startswith(APPS)
    ]


def test_no_index_of_ours_is_the_leading_part_of_another():
    indexes = _indexes()
    assert any(i["name"] == "task_agent_created" for i in indexes)  # the query sees our tables
    redundant = [
        (short["name"], long["name"])
        for short in indexes
        for long in indexes
        if short is not long
        and short["table"] == long["table"]
        and not short["unique"]
        and not short["partial"]
        and not long["partial"]
        and "pattern_ops" not in short["definition"] + long["definition"]
        and long["columns"][: len(short["columns"])] == short["columns"]
    ]
    assert redundant == []


def test_tables_written_on_every_task_have_no_like_index():
    likes = [i["name"] for i in _indexes() if i["table"] in WRITE_HOT and "pattern_ops" in i["definition"]]
    assert likes == []


def test_the_covering_indexes_serve_the_foreign_keys_lookups():
    # What the dropped indexes served, each by an index leading with the same column.
    leading = {(i["table"], i["columns"][0]) for i in _indexes()}
    for table, column in [
        ("tasks_task", "assigned_agent_id"),
        ("tasks_taskevent", "task_id"),
        ("workflows_steprun", "run_id"),
        ("workflows_workflowevent", "run_id"),
        ("workflows_workflowrun", "definition_id"),
        ("agents_agentroute", "agent_id"),
        ("tasks_task", "idempotency_key"),
        ("workflows_workflowrun", "idempotency_key"),
    ]:
        assert (table, column) in leading, (table, column)
