"""A NUL character (or a lone surrogate) in a text field gets exactly one message, the same everywhere:
DRF's own validators (null characters, the field's pattern) no longer add theirs beside the project's."""

import pytest

from agents.serializers import AgentRegistrationSerializer
from tasks.serializers import TaskBulkCreateSerializer, TaskCreateSerializer
from workflows.serializers import DecisionSerializer, DefinitionCreateSerializer, RunCreateSerializer

NUL = "This field must not contain NUL characters."
SURROGATE = "This field must be valid Unicode text."
TASK = {"type": "document_analysis"}
AGENT = {"type": "rag", "name": "a", "endpoint": "http://127.0.0.1:9", "capabilities": ["x"]}

CASES = [
    (TaskCreateSerializer, {**TASK, "description": "a\x00b"}, ["description"], NUL),
    (TaskCreateSerializer, {**TASK, "description": "\ud800"}, ["description"], SURROGATE),
    (TaskCreateSerializer, {"type": "sum\x00marize"}, ["type"], NUL),
    (TaskCreateSerializer, {"type": "\udfff"}, ["type"], SURROGATE),
    (TaskCreateSerializer, {**TASK, "required_capabilities": ["a\x00"]}, ["required_capabilities", 0], NUL),
    (
        TaskBulkCreateSerializer,
        {"tasks": [{**TASK, "description": "\x00"}]},
        ["tasks", 0, "description"],
        NUL,
    ),
    (DefinitionCreateSerializer, {"name": "a\x00", "spec": {}}, ["name"], NUL),
    (DefinitionCreateSerializer, {"name": "a", "description": "\x00", "spec": {}}, ["description"], NUL),
    (RunCreateSerializer, {"workflow": "w\x00"}, ["workflow"], NUL),
    (DecisionSerializer, {"comment": "ok\x00"}, ["comment"], NUL),
    (AgentRegistrationSerializer, {**AGENT, "name": "a\x00b"}, ["name"], NUL),
    (AgentRegistrationSerializer, {**AGENT, "capabilities": ["x\x00"]}, ["capabilities", 0], NUL),
]


@pytest.mark.parametrize(("serializer", "data", "where", "message"), CASES)
def test_one_message_per_field(serializer, data, where, message):
    body = serializer(data=data)
    assert not body.is_valid()
    errors = body.errors
    for key in where:
        errors = errors[key]
    assert [str(e) for e in errors] == [message]


def test_the_api_answers_one_message_for_a_nul_in_a_description(operator_client):
    response = operator_client.post("/api/v1/tasks", {**TASK, "description": "a\x00b"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"description": [NUL]}
