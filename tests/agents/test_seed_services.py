from io import StringIO

import pytest
from django.core.management import call_command

from agents.models import Agent


def run():
    out = StringIO()
    call_command("register_seed_services", stdout=out)
    return out.getvalue()


@pytest.fixture
def no_seed_services(settings):
    settings.RAG_SERVICE_URL = settings.RULEGEN_SERVICE_URL = None
    settings.RAG_SERVICE_CAPABILITIES = settings.RULEGEN_SERVICE_CAPABILITIES = []


def test_it_does_nothing_quietly_when_no_service_is_configured(db, no_seed_services):
    assert run() == ""
    assert not Agent.objects.exists()


def test_configured_services_are_registered_once(db, no_seed_services, settings, fake_agent):
    rulegen = fake_agent()
    rulegen.card([{"id": "rule_generation", "tags": ["rules"]}])
    settings.RAG_SERVICE_URL = "http://127.0.0.1:9/rag"
    settings.RAG_SERVICE_CAPABILITIES = ["document_analysis", "question_answering"]
    settings.RULEGEN_SERVICE_URL = rulegen.url

    run()
    first = {agent.type: agent for agent in Agent.objects.all()}
    run()

    agents = {agent.type: agent for agent in Agent.objects.all()}
    assert set(agents) == {"rag_agent", "rulegen_agent"}
    assert agents["rag_agent"].capabilities == ["document_analysis", "question_answering"]
    assert agents["rulegen_agent"].capabilities == ["rule_generation", "rules"]
    assert all(agent.probe_heartbeats for agent in agents.values())
    # Idempotent: same agents, same credentials.
    for kind, agent in agents.items():
        assert (agent.pk, agent.token_hash) == (first[kind].pk, first[kind].token_hash)


def test_a_service_that_cannot_be_registered_is_logged_not_fatal(db, no_seed_services, settings, caplog):
    settings.RAG_SERVICE_URL = "http://169.254.169.254/"
    settings.RULEGEN_SERVICE_URL = "http://127.0.0.1:9/rulegen"
    settings.RULEGEN_SERVICE_CAPABILITIES = ["rules"]

    run()

    assert list(Agent.objects.values_list("type", flat=True)) == ["rulegen_agent"]
    assert "could not register RAG service" in caplog.text
