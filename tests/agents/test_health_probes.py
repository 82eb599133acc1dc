from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent, AgentStatus, AgentStatusChange
from agents.probes import probe_agents
from tests.agents.conftest import make_agent


@pytest.fixture(autouse=True)
def _two_strikes(settings):
    settings.AGENT_PROBE_FAILURE_THRESHOLD = 2
    settings.AGENT_PROBE_INTERVAL = 10
    settings.AGENT_PROBE_TIMEOUT = 2


@pytest.fixture
def rounds():
    """Probe round times, one interval apart, so every round finds the agents due again."""
    start = timezone.now()
    return iter(start + timedelta(seconds=10 * i) for i in range(100))


@pytest.fixture
def failing(fake_agent):
    server = fake_agent()
    server.health(500)
    return server


def statuses(agent):
    return list(
        AgentStatusChange.objects.filter(agent=agent)
        .exclude(reason="registered")
        .order_by("id")
        .values_list("old_status", "new_status")
    )


def test_repeated_probe_failures_make_an_agent_unhealthy(db, failing, rounds):
    agent = make_agent("flaky", endpoint=failing.url)

    assert probe_agents(now=next(rounds)) == ([], [agent.pk])
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ONLINE

    probe_agents(now=next(rounds))

    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.UNHEALTHY
    assert statuses(agent) == [("online", "unhealthy")]
    assert len(failing.requests_to("/health")) == 2


def test_a_successful_probe_brings_an_unhealthy_agent_back_and_wakes_dispatch(
    failing, rounds, dispatch_rings
):
    agent = make_agent("flaky", endpoint=failing.url)
    assert dispatch_rings.heard() == [""]  # a new agent online can take work
    probe_agents(now=next(rounds))
    probe_agents(now=next(rounds))
    failing.health(200)
    assert dispatch_rings.heard() == []  # turning unhealthy frees nothing

    assert probe_agents(now=next(rounds)) == ([agent.pk], [])

    agent.refresh_from_db()
    assert (agent.status, agent.probe_failures) == (AgentStatus.ONLINE, 0)
    assert statuses(agent) == [("online", "unhealthy"), ("unhealthy", "online")]
    assert dispatch_rings.heard() == [""]


def test_one_success_resets_the_failure_count(db, failing, rounds):
    agent = make_agent("flaky", endpoint=failing.url)
    probe_agents(now=next(rounds))
    failing.health(200)
    probe_agents(now=next(rounds))
    failing.health(500)

    probe_agents(now=next(rounds))

    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ONLINE


def test_an_unreachable_agent_fails_its_probe(db, rounds):
    agent = make_agent("gone", endpoint="http://127.0.0.1:9")

    assert probe_agents(now=next(rounds)) == ([], [agent.pk])


def test_an_agent_probed_moments_ago_is_not_probed_again(db, failing):
    make_agent("flaky", endpoint=failing.url)
    now = timezone.now()

    probe_agents(now=now)
    assert probe_agents(now=now + timedelta(seconds=1)) == ([], [])
    assert len(failing.requests_to("/health")) == 1


def test_draining_and_offline_agents_are_not_probed(db, failing, rounds):
    for name, status in [("d", AgentStatus.DRAINING), ("o", AgentStatus.OFFLINE)]:
        agent = make_agent(name, endpoint=f"{failing.url}/{name}")
        Agent.objects.filter(pk=agent.pk).update(status=status)

    assert probe_agents(now=next(rounds)) == ([], [])
    assert failing.requests == []


def test_a_probe_counts_as_a_heartbeat_for_services_that_send_none(db, fake_agent, rounds):
    server = fake_agent()
    server.health(200)
    agent = make_agent("seed", endpoint=server.url, probe_heartbeats=True)
    Agent.objects.filter(pk=agent.pk).update(status=AgentStatus.OFFLINE)
    now = next(rounds)

    probe_agents(now=now)

    agent.refresh_from_db()
    assert agent.status == AgentStatus.ONLINE
    assert agent.last_heartbeat == now
    assert agent.heartbeat_expires_at == now + timedelta(seconds=agent.heartbeat_timeout)
