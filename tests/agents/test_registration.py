import json
from datetime import timedelta

import pytest

from agents.models import Agent, AgentStatus, AgentStatusChange
from orchestrator_project.accounts.models import hash_token
from tests.agents.conftest import client_for_agent

URL = "/api/v1/agents"


def body(**overrides):
    data = {
        "type": "rag_agent",
        "name": "Advanced RAG Agent",
        "endpoint": "http://127.0.0.1:9/rag",
        "capabilities": ["document_analysis", "question_answering"],
        "metadata": {"version": "1.0"},
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not OMIT}


OMIT = object()


def test_an_operator_registers_an_agent_and_gets_its_credentials_once(operator_client):
    data = body(max_concurrency=4, weight=3, heartbeat_timeout=20)

    response = operator_client.post(URL, data, format="json")

    assert response.status_code == 201
    data = response.json()
    assert data["type"] == "rag_agent"
    assert data["capabilities"] == ["document_analysis", "question_answering"]
    assert data["metadata"] == {"version": "1.0"}
    assert (data["max_concurrency"], data["weight"], data["heartbeat_timeout"]) == (4, 3, 20)
    assert data["status"] == AgentStatus.ONLINE
    assert data["token"].startswith("aoa_")
    assert data["signing_secret"].startswith("whsec_")
    agent = Agent.objects.get(pk=data["agent_id"])
    assert agent.token_hash == hash_token(data["token"])
    assert data["token"] not in json.dumps(list(Agent.objects.values()), default=str)
    # Credentials are shown at registration only.
    detail = operator_client.get(f"{URL}/{agent.pk}").json()
    assert "token" not in detail and "signing_secret" not in detail


def test_registration_starts_the_heartbeat_clock_and_records_the_first_status(operator_client):
    data = operator_client.post(URL, body(heartbeat_timeout=20), format="json").json()

    agent = Agent.objects.get(pk=data["agent_id"])
    assert agent.heartbeat_expires_at - agent.last_heartbeat == timedelta(seconds=20)
    change = AgentStatusChange.objects.get(agent=agent)
    assert (change.old_status, change.new_status, change.reason) == ("", "online", "registered")


def test_the_new_token_authenticates_as_the_agent(operator_client):
    data = operator_client.post(URL, body(), format="json").json()

    agent = Agent.objects.get(pk=data["agent_id"])
    agent.token = data["token"]
    assert client_for_agent(agent).get(f"{URL}/{agent.pk}").status_code == 200


def test_registering_a_known_endpoint_updates_that_agent_with_fresh_credentials(operator_client):
    first = operator_client.post(URL, body(), format="json").json()

    second = operator_client.post(
        URL, body(name="Renamed", endpoint="http://127.0.0.1:9/rag/", capabilities=["search"]), format="json"
    )

    assert second.status_code == 200
    data = second.json()
    assert data["agent_id"] == first["agent_id"]
    assert (data["name"], data["capabilities"]) == ("Renamed", ["search"])
    assert data["token"] != first["token"] and data["signing_secret"] != first["signing_secret"]
    assert Agent.objects.count() == 1
    old = Agent(pk=first["agent_id"])
    old.token = first["token"]
    assert client_for_agent(old).get(f"{URL}/{first['agent_id']}").status_code == 401


def test_the_endpoint_is_stored_without_its_trailing_slash(operator_client):
    data = operator_client.post(URL, body(endpoint="HTTP://127.0.0.1:9/rag/"), format="json").json()

    assert data["endpoint"] == "http://127.0.0.1:9/rag"


def test_duplicate_capabilities_are_stored_once(operator_client):
    data = operator_client.post(URL, body(capabilities=["a", "b", "a"]), format="json").json()

    assert data["capabilities"] == ["a", "b"]


DEEP = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": 1}}}}}}}}}}}

BAD_FIELDS = [
    ("type", OMIT),
    ("type", ""),
    ("type", 42),
    ("type", "x" * 101),
    ("type", "has space"),
    ("type", "rag\x00agent"),
    ("name", OMIT),
    ("name", ""),
    ("name", None),
    ("name", ["list"]),
    ("name", "n" * 201),
    ("name", "bad\x00name"),
    ("name", "line\nbreak"),
    ("name", "lone \ud800 surrogate"),
    ("endpoint", OMIT),
    ("endpoint", ""),
    ("endpoint", 7),
    ("endpoint", "not a url"),
    ("endpoint", "http://127.0.0.1:9/rag\x00"),
    ("endpoint", "http://127.0.0.1:9/" + "p" * 2000),
    ("endpoint", "http://127.0.0.1:9/rag?x=1"),
    ("endpoint", "http://127.0.0.1:99999"),
    ("endpoint", "http://[::1"),
    ("capabilities", []),
    ("capabilities", "summarize"),
    ("capabilities", [""]),
    ("capabilities", [5]),
    ("capabilities", ["has space"]),
    ("capabilities", ["nul\x00"]),
    ("capabilities", ["c" * 101]),
    ("capabilities", [f"c{i}" for i in range(101)]),
    ("capabilities", None),
    ("metadata", ["not", "an", "object"]),
    ("metadata", "text"),
    ("metadata", {"key": "nul\x00value"}),
    ("metadata", {"nul\x00key": 1}),
    ("metadata", {"nested": [{"deep": "x\x00"}]}),
    ("metadata", DEEP),
    ("metadata", {"big": "x" * (65 * 1024)}),
    ("max_concurrency", 0),
    ("max_concurrency", -1),
    ("max_concurrency", 10_001),
    ("max_concurrency", "5"),
    ("max_concurrency", 1.5),
    ("max_concurrency", True),
    ("max_concurrency", None),
    ("weight", 0),
    ("weight", 1001),
    ("weight", "heavy"),
    ("heartbeat_timeout", 0),
    ("heartbeat_timeout", 3601),
    ("heartbeat_timeout", [30]),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_a_bad_field_is_refused_with_its_error_and_nothing_is_stored(operator_client, field, value):
    # Encoded here with ASCII escapes: a lone surrogate must reach the server as JSON allows it.
    response = operator_client.post(URL, json.dumps(body(**{field: value})), content_type="application/json")

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Agent.objects.exists()
    assert not AgentStatusChange.objects.exists()


@pytest.mark.parametrize(
    "field",
    [
        "agent_id",
        "status",
        "circuit_state",
        "current_load",
        "token_hash",
        "drained_by_operator",
        "success_count",
    ],
)
def test_read_only_fields_cannot_be_set_at_registration(operator_client, field):
    response = operator_client.post(URL, body(**{field: "x"}), format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Agent.objects.exists()


def test_an_unknown_field_is_refused_rather_than_ignored(operator_client):
    # "capabilites" (sic) would otherwise silently fall back to discovery.
    response = operator_client.post(URL, body(capabilites=["x"]), format="json")

    assert response.status_code == 400
    assert response.json() == {"capabilites": ["Unknown field."]}


def test_a_body_that_is_not_an_object_is_refused(operator_client):
    response = operator_client.post(URL, [body()], format="json")

    assert response.status_code == 400
    assert not Agent.objects.exists()


def test_json_nested_beyond_the_parsers_limits_is_a_bad_request(operator_client):
    nested = "[" * 100_000 + "]" * 100_000

    response = operator_client.post(URL, nested, content_type="application/json")

    assert response.status_code == 400


def test_a_viewer_cannot_register(viewer_client):
    assert viewer_client.post(URL, body(), format="json").status_code == 403
    assert not Agent.objects.exists()


def test_anonymous_registration_is_unauthorized(anon_client, db):
    assert anon_client.post(URL, body(), format="json").status_code == 401


def test_an_agent_cannot_register_another_agent(alice_client):
    response = alice_client.post(URL, body(endpoint="http://127.0.0.1:9/other"), format="json")

    assert response.status_code == 403
    assert not Agent.objects.filter(endpoint="http://127.0.0.1:9/other").exists()
