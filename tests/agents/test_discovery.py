"""Capabilities omitted at registration are read from the agent's A2A agent card."""

from agents.models import Agent

URL = "/api/v1/agents"


def register(client, endpoint):
    return client.post(URL, {"type": "rag_agent", "name": "Card", "endpoint": endpoint}, format="json")


def test_capabilities_come_from_skill_ids_and_tags(operator_client, fake_agent):
    agent = fake_agent()
    agent.card(
        [
            {"id": "document_analysis", "tags": ["pdf", "analysis"]},
            {"id": "question_answering", "tags": ["analysis", "bad tag with spaces", 7]},
            "not a skill",
        ]
    )

    response = register(operator_client, agent.url)

    assert response.status_code == 201
    assert response.json()["capabilities"] == ["document_analysis", "pdf", "analysis", "question_answering"]
    assert [r.path for r in agent.requests] == ["/.well-known/agent-card.json"]


def test_a_card_without_skills_fails_registration_saying_so(operator_client, fake_agent):
    agent = fake_agent()
    agent.card([])

    response = register(operator_client, agent.url)

    assert response.status_code == 400
    assert "could not be discovered" in response.json()["capabilities"][0]
    assert not Agent.objects.exists()


def test_a_missing_card_fails_registration(operator_client, fake_agent):
    response = register(operator_client, fake_agent().url)

    assert response.status_code == 400
    assert "answered 404" in response.json()["capabilities"][0]
    assert not Agent.objects.exists()


def test_a_card_that_is_not_json_fails_registration(operator_client, fake_agent):
    agent = fake_agent({"/.well-known/agent-card.json": (200, b"<html>")})

    response = register(operator_client, agent.url)

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["capabilities"][0]


def test_an_unreachable_agent_fails_registration(operator_client, fake_agent):
    agent = fake_agent()
    url = agent.url
    agent.close()

    response = register(operator_client, url)

    assert response.status_code == 400
    assert "could not be discovered" in response.json()["capabilities"][0]
    assert not Agent.objects.exists()
