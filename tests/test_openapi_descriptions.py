"""The API docs describe every operation for its users: agents' operations have a summary and a
description saying who may call them, no operation or schema shows a developer's docstring, and a task's
priority says which way it runs."""

from pathlib import Path

import pytest

AGENT_OPERATIONS = {
    ("/api/v1/agents", "get"): "Viewers",
    ("/api/v1/agents", "post"): "Operators only",
    ("/api/v1/agents/{agent_id}", "get"): "agent's own token",
    ("/api/v1/agents/{agent_id}", "delete"): "Operators only",
    ("/api/v1/agents/{agent_id}/heartbeat", "post"): "own token",
    ("/api/v1/agents/{agent_id}/drain", "post"): "Operators only",
    ("/api/v1/agents/{agent_id}/resume", "post"): "Operators only",
}
# Words of a developer's note, not of a user's description.
INTERNAL = ("DRF", "__init__", "to_representation", "docstring", ".py", "the sync part", "presence keys")
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        return Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()


def operations(schema):
    return {
        (path, method): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
    }


def test_every_agent_operation_has_a_summary_and_says_who_may_call_it(schema):
    found = {key: op for key, op in operations(schema).items() if key[0].startswith("/api/v1/agents")}
    assert set(found) == set(AGENT_OPERATIONS)
    for key, operation in found.items():
        assert operation.get("summary"), key
        assert operation["summary"] != operation["operationId"], key
        assert len(operation.get("description", "")) > 60, key
        assert AGENT_OPERATIONS[key] in operation["description"], key
        assert operation["tags"] == ["agents"], key


def test_agent_operations_document_their_notable_answers(schema):
    ops = operations(schema)
    register = ops[("/api/v1/agents", "post")]
    assert {"200", "201"} <= set(register["responses"])
    assert "shown only this once" in register["description"]
    heartbeat = ops[("/api/v1/agents/{agent_id}/heartbeat", "post")]
    assert "429" in heartbeat["responses"] and "Retry-After" in heartbeat["description"]
    for key in AGENT_OPERATIONS:
        if key[0] != "/api/v1/agents":
            assert "404" in ops[key]["responses"], key
    assert "204" in ops[("/api/v1/agents/{agent_id}", "delete")]["responses"]


def test_execute_and_status_are_described_for_users_not_developers(schema):
    ops = operations(schema)
    execute = ops[("/api/v1/tasks/{task_id}/execute", "post")]["description"]
    status = ops[("/status", "get")]["description"]
    assert "sync part" not in execute and "async" not in execute
    assert "Operators only" in execute
    for code in ("200", "502", "504", "409"):
        assert f"- {code}:" in execute
    assert "presence keys" not in status and "broadcast ping" not in status and "GET /status" not in status
    assert "Viewers and operators" in status and "`queue`" in status


def test_no_operation_or_schema_shows_a_developer_note(schema):
    described = [(f"{m.upper()} {p}", op.get("description", "")) for (p, m), op in operations(schema).items()]
    described += [(name, c.get("description", "")) for name, c in schema["components"]["schemas"].items()]
    leaks = [(where, word) for where, text in described for word in INTERNAL if word in text]
    assert leaks == []
    # The request bodies no longer carry the serializer mixins' notes (shallow copies, mass assignment).
    for name in ("TaskCreateRequest", "TaskBulkCreateRequest", "AssignRequest", "RunCreateRequest"):
        assert "description" not in schema["components"]["schemas"][name], name


def test_a_tasks_priority_says_1_is_the_most_urgent(schema):
    components = schema["components"]["schemas"]
    for name in ("TaskCreateRequest", "Task", "TaskList", "TaskDetail"):
        text = components[name]["properties"]["priority"]["description"]
        assert "1 = most urgent" in text and "10 = least urgent" in text and "default 5" in text, name
    assert "**1 is the most urgent**" in (DOCS / "agent-protocol.md").read_text()
