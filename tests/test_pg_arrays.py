"""Array parameters as one literal (orchestrator_project/pg_arrays.py) reach Postgres as the same arrays
that psycopg's own list adaptation sends, through Django's cursors (client-side binding) and the
prepared ones (server-side binding) alike, whatever the strings hold."""

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from django.db import connection
from psycopg.types.json import Jsonb

from orchestrator_project.pg_arrays import array_literal
from orchestrator_project.prepared import prepared_cursor

pytestmark = pytest.mark.django_db

HOSTILE_TEXTS = [
    'a"b',
    "back\\slash",
    '\\"',
    "trailing\\",
    "{braces}",
    "a,b",
    "NULL",
    "null",
    "",
    "  spaced  ",
    "new\nline\ttab",
    "ünïcødé ✓",
    "'single' quotes; DROP TABLE tasks_task; --",
    None,
]

CASES = [
    ("text[]", HOSTILE_TEXTS),
    ("varchar[]", ["document_analysis", "x", None]),
    ("uuid[]", [uuid4(), None, UUID(int=0)]),
    ("int[]", [0, -1, 2**31 - 1, None]),
    ("bigint[]", [2**62, -(2**62)]),
    ("float8[]", [0.1, -1e-300, 1e300, float("inf"), float("-inf"), None]),
    ("numeric[]", [Decimal("1.50"), Decimal("-0.001")]),
    ("bool[]", [True, False, None]),
    ("timestamptz[]", [datetime(2026, 12, 6, 6, 29, 18, 477623, tzinfo=UTC), None]),
    ("date[]", [date(2026, 2, 28)]),
    ("int[]", []),
]


def _through_both_cursors(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        client_bound = cursor.fetchone()[0]
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        server_bound = cursor.fetchone()[0]
    return client_bound, server_bound


@pytest.mark.parametrize(("sql_type", "values"), CASES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CASES)])
def test_each_kind_of_value_arrives_as_it_was(sql_type, values):
    assert _through_both_cursors(f"SELECT %s::{sql_type}", [array_literal(values)]) == (values, values)


def test_an_aware_time_keeps_its_instant_whatever_its_offset():
    moment = datetime(2026, 12, 6, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    sent = array_literal([moment])
    assert _through_both_cursors("SELECT (%s::timestamptz[])[1]", [sent]) == (moment, moment)


def test_nan_survives():
    sent = array_literal([float("nan")])
    client_bound, server_bound = _through_both_cursors("SELECT (%s::float8[])[1] = 'NaN'::float8", [sent])
    assert client_bound is True and server_bound is True


def test_json_documents_arrive_whole_and_nested_quotes_stay_quotes():
    documents = [{"say": 'he said "hi" \\ bye', "list": [1, None, "}{"]}, "a string", 3, None]
    sent = array_literal([Jsonb(d) for d in documents] + [None])
    client_bound, server_bound = _through_both_cursors("SELECT %s::jsonb[]", [sent])
    # psycopg gives jsonb[] back as the elements' text: parse them to compare.
    for got in (client_bound, server_bound):
        assert [None if v is None else json.loads(v) if isinstance(v, str) else v for v in got] == [
            *documents,
            None,
        ]


def test_json_text_casts_to_jsonb_as_the_statements_do():
    payloads = [json.dumps({"k": 'v"\\'}), None]
    sent = array_literal(payloads)
    result = _through_both_cursors("SELECT array_to_json(%s::text[]::jsonb[])::text", [sent])
    assert json.loads(result[0]) == json.loads(result[1]) == [{"k": 'v"\\'}, None]


def test_the_literal_is_one_array_of_as_many_elements_in_unnest():
    texts = [t for t in HOSTILE_TEXTS if t is not None]
    sql = "SELECT count(DISTINCT x) FROM unnest(%s::text[]) AS x"  # each text is one element, unsplit
    assert _through_both_cursors(sql, [array_literal(texts)]) == (len(texts), len(texts))


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], b"bytes", object()])
def test_values_whose_text_is_not_their_input_form_are_refused(value):
    with pytest.raises(TypeError, match="scalars"):
        array_literal(["fine", value])
