import pytest

from agents.models import Agent, AgentStatus
from tests.agents.conftest import make_agent

URL = "/api/v1/agents"


@pytest.fixture
def fleet(db):
    make_agent("ada", capabilities=["summarize", "translate"], type="rag_agent")
    make_agent("ben", capabilities=["summarize"], type="rulegen_agent")
    make_agent("cy", capabilities=["translate", "ocr"], type="rag_agent")
    Agent.objects.filter(name="cy").update(status=AgentStatus.OFFLINE)


def names(response):
    assert response.status_code == 200, response.content
    return [agent["name"] for agent in response.json()["results"]]


def test_a_viewer_lists_agents_paginated(viewer_client, fleet):
    response = viewer_client.get(URL, {"page_size": 2})

    data = response.json()
    assert data["count"] == 3
    assert [a["name"] for a in data["results"]] == ["ada", "ben"]
    assert data["next"] and data["previous"] is None
    assert names(viewer_client.get(data["next"])) == ["cy"]


def test_agents_are_filtered_by_status_and_type(viewer_client, fleet):
    assert names(viewer_client.get(URL, {"status": "offline"})) == ["cy"]
    assert names(viewer_client.get(URL, {"type": "rag_agent"})) == ["ada", "cy"]
    assert names(viewer_client.get(URL, {"type": "rag_agent", "status": "online"})) == ["ada"]


def test_repeated_capabilities_must_all_be_offered(viewer_client, fleet):
    assert names(viewer_client.get(URL, {"capability": "summarize"})) == ["ada", "ben"]
    assert names(viewer_client.get(URL, {"capability": ["summarize", "translate"]})) == ["ada"]
    assert names(viewer_client.get(URL, {"capability": ["summarize", "ocr"]})) == []


def test_agents_are_searched_by_name_and_ordered(viewer_client, fleet):
    assert names(viewer_client.get(URL, {"search": "BE"})) == ["ben"]
    assert names(viewer_client.get(URL, {"ordering": "-name"})) == ["cy", "ben", "ada"]


@pytest.mark.parametrize(
    "query", [{"status": "asleep"}, {"capability": "bad value"}, {"search": "a\x00b"}, {"type": "x" * 101}]
)
def test_a_bad_filter_is_a_bad_request(viewer_client, fleet, query):
    assert viewer_client.get(URL, query).status_code == 400


def test_a_viewer_reads_one_agent_without_its_credentials(viewer_client, alice):
    data = viewer_client.get(f"{URL}/{alice.pk}").json()

    assert data["agent_id"] == str(alice.pk)
    assert data["capabilities"] == ["summarize", "translate"]
    assert not {"token", "token_hash", "signing_secret"} & set(data)


def test_an_unknown_agent_is_not_found(viewer_client, db):
    assert viewer_client.get(f"{URL}/00000000-0000-4000-8000-000000000000").status_code == 404
    assert viewer_client.get(f"{URL}/not-a-uuid").status_code == 404
