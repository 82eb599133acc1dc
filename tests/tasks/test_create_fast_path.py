"""plainly_valid_task must agree with TaskCreateSerializer: same validated data when it answers, and it
must leave every body it is not sure about (all invalid ones included) to the serializer."""

import pytest

from tasks.serializers import TaskCreateSerializer, plainly_valid_task

DEEP = 1
for _ in range(40):
    DEEP = [DEEP]

PLAIN = [
    {"type": "summarize"},
    {"type": "summarize", "input_data": {"text": "naïve", "n": [1, 2.5, None, {"k": True}]}},
    {"type": "a.b:c/d-e_f", "priority": 10},
    {"type": "x" * 100, "priority": 1, "input_data": {}},
]
NOT_PLAIN = [
    {"type": " summarize"},
    {"type": "summarize\n"},
    {"type": "x" * 101},
    {"type": ""},
    {"type": 5},
    {"type": None},
    {"type": "bad type!"},
    {"type": "t", "priority": True},
    {"type": "t", "priority": 5.0},
    {"type": "t", "priority": "5"},
    {"type": "t", "priority": 0},
    {"type": "t", "priority": 11},
    {"type": "t", "input_data": []},
    {"type": "t", "input_data": None},
    {"type": "t", "input_data": {"nul": "a\x00b"}},
    {"type": "t", "input_data": {"deep": DEEP}},
    {"type": "t", "description": "with a description"},
    {"type": "t", "required_capabilities": ["t"]},
    {"type": "t", "status": "completed"},
    {"input_data": {}},
    {},
    [],
    "type=t",
]


def _serializer(body):
    serializer = TaskCreateSerializer(data=body)
    return serializer.validated_data if serializer.is_valid() else None


@pytest.mark.parametrize("body", PLAIN)
def test_plain_bodies_get_what_the_serializer_gives(body):
    fast = plainly_valid_task(body)
    assert fast is not None  # the common shapes do take the fast path
    assert fast == dict(_serializer(body))


@pytest.mark.parametrize("body", NOT_PLAIN)
def test_anything_else_is_left_to_the_serializer(body):
    assert plainly_valid_task(body) is None


def test_oversized_input_is_left_to_the_serializer(settings):
    settings.TASK_MAX_INPUT_BYTES = 20
    body = {"type": "t", "input_data": {"text": "x" * 20}}
    assert plainly_valid_task(body) is None
    assert _serializer(body) is None


def test_defaults_follow_the_settings(settings):
    settings.TASK_MAX_RETRIES, settings.TASK_DEFAULT_TIMEOUT = 7, 9
    assert plainly_valid_task({"type": "t"}) == dict(_serializer({"type": "t"}))
    assert plainly_valid_task({"type": "t"})["max_retries"] == 7
