"""A condition compares JSON values as JSON: `true` is not `1` (Python's bool is an int), booleans have
no order, and `in` means an element of a list, a key of an object or a substring of a string."""

import pytest

from workflows import conditions
from workflows.models import StepRun

from .helpers import run_settles, start, steps

INPUT = {"t": True, "f": False, "one": 1, "zero": 0, "list": [1, 2], "flags": [True], "doc": {"a": 1}}


def holds(op, path, value):
    return conditions.evaluate({"path": f"$.input.{path}", "op": op, "value": value}, {"input": INPUT})


@pytest.mark.parametrize(
    ("op", "path", "value", "expected"),
    [
        ("eq", "t", 1, False),
        ("eq", "f", 0, False),
        ("eq", "t", True, True),
        ("ne", "one", True, True),
        ("eq", "one", 1.0, True),  # one JSON number
        ("eq", "list", [True, 2], False),
        ("eq", "doc", {"a": True}, False),
        ("eq", "doc", {"a": 1}, True),
        ("in", "one", [True], False),
        ("in", "t", [1, True], True),
        ("not_in", "t", [1], True),
        ("contains", "list", True, False),
        ("contains", "flags", True, True),
        ("contains", "doc", "a", True),  # an object's keys
        ("in", "one", {"1": "x"}, False),  # keys are strings
        ("gt", "one", 0, True),
    ],
)
def test_json_values_compare_as_json(op, path, value, expected):
    assert holds(op, path, value) is expected


@pytest.mark.parametrize(
    ("op", "path", "value"),
    [
        ("gt", "t", 0),
        ("lte", "one", False),
        ("lt", "f", True),
        ("gt", "one", "x"),
        ("in", "one", "123"),  # a number in a string
        ("in", "one", 5),  # nothing is in a number
    ],
)
def test_values_without_an_order_or_a_membership_cannot_be_compared(op, path, value):
    with pytest.raises(TypeError):
        holds(op, path, value)


def test_such_a_condition_fails_its_step_saying_why(operator_client, define):
    define(
        "booleans",
        [{"id": "check", "type": "condition", "when": {"path": "$.input.t", "op": "gt", "value": 0}}],
    )

    run_id = start(operator_client, "booleans", {"t": True})

    run_settles(run_id, "failed")
    assert steps(run_id) == {"check": "failed"}
    message = StepRun.objects.get(run_id=run_id, step_id="check").error["message"]
    assert message.startswith("the condition cannot compare these values: a boolean has no order")
