"""Actors of the agents tests: agents registered through the service, their own API clients, fake agents."""

import pytest
from django.db.models import F
from rest_framework.test import APIClient

from agents.models import Agent
from agents.services import register_agent
from tasks.models import Task
from tests.agents.fake_agent import FakeAgent


@pytest.fixture
def fake_agent():
    """Factory for loopback agents; all are shut down after the test."""
    started = []

    def start(routes=None):
        agent = FakeAgent(routes)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()


def make_agent(name, *, endpoint=None, capabilities=("summarize",), **fields):
    """Register an agent; returns it with `.token` set to its raw credential."""
    agent, _, token = register_agent(
        endpoint=endpoint or f"http://127.0.0.1:9/{name}",
        type=fields.pop("type", "rag_agent"),
        name=name,
        capabilities=list(capabilities),
        **fields,
    )
    agent.token = token
    return agent


def client_for_agent(agent):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent.token}")
    return client


@pytest.fixture
def alice(db):
    """An online agent that summarizes."""
    return make_agent("alice", capabilities=["summarize", "translate"])


@pytest.fixture
def bob(db):
    """Another online agent."""
    return make_agent("bob", capabilities=["summarize"], type="rulegen_agent")


@pytest.fixture
def alice_client(alice):
    return client_for_agent(alice)


def task_on(agent, status, *, attempts=1):
    """A task the dispatch engine has put on `agent`, holding one of its slots."""
    Agent.objects.filter(pk=agent.pk).update(current_load=F("current_load") + 1)
    return Task.objects.create(
        type="summarize",
        required_capabilities=["summarize"],
        status=status,
        assigned_agent=agent,
        attempts=attempts,
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The actors' users are created per test; the default hasher makes that most of the suite's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
