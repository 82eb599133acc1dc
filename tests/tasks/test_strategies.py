"""Load-balancing strategies, each through a real claim against Postgres."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from tasks.engine import claim
from tasks.engine.strategies import STRATEGIES, get_strategy
from tasks.models import Task

from .conftest import make_agent, queue_tasks


def agent(name, **fields):
    return make_agent(name, **fields)


def queue(count, strategy=""):
    queue_tasks(count, strategy)


def assigned_counts():
    return Counter(Task.objects.filter(status="assigned").values_list("assigned_agent__name", flat=True))


def test_least_connections_fills_the_emptiest_agent_first(db):
    agent("busy", max_concurrency=10, current_load=8)
    agent("idle", max_concurrency=10, current_load=0)
    queue(6, "least_connections")
    claim.claim()
    # The idle agent takes work until its relative load matches the busy one's.
    assert assigned_counts() == {"idle": 6}


def test_least_connections_is_the_default(db, settings):
    assert get_strategy("").name == "least_connections"
    settings.LOAD_BALANCING_STRATEGY = "random"
    assert get_strategy("").name == "random"


def test_round_robin_takes_turns(db):
    for name in "abc":
        agent(name, max_concurrency=100)
    queue(9, "round_robin")
    claim.claim()
    assert sorted(assigned_counts().values()) == [3, 3, 3]


def test_weighted_round_robin_follows_the_weights(db):
    agent("heavy", weight=3, max_concurrency=100)
    agent("light", weight=1, max_concurrency=100)
    queue(40, "weighted_round_robin")
    claim.claim()
    assert assigned_counts() == {"heavy": 30, "light": 10}


def test_random_uses_every_agent_eventually(db):
    for name in "abcd":
        agent(name, max_concurrency=200)
    queue(200, "random")
    claim.claim()
    counts = assigned_counts()
    assert set(counts) == set("abcd") and sum(counts.values()) == 200


def test_fastest_prefers_low_latency_and_reliable_agents(db):
    agent("slow", avg_latency_ms=900, success_rate=1.0, max_concurrency=100)
    agent("fast", avg_latency_ms=50, success_rate=1.0, max_concurrency=5)
    agent("flaky", avg_latency_ms=40, success_rate=0.1, max_concurrency=100)
    queue(7, "fastest")
    claim.claim()
    # Expected time to a success is latency / success rate: fast 50 ms until it is full, then flaky
    # (40 / 0.1 = 400 ms) ahead of slow (900 ms).
    assert assigned_counts() == {"fast": 5, "flaky": 2}


def test_no_agent_is_ever_filled_beyond_its_capacity(db):
    agent("small", max_concurrency=2)
    agent("medium", max_concurrency=3)
    queue(20)
    assert len(claim.claim()) == 5
    assert {a.name: a.current_load for a in Agent.objects.all()} == {"small": 2, "medium": 3}
    assert Task.objects.filter(status="pending").count() == 15


def test_agents_that_are_not_routable_get_nothing(db):
    agent("offline", status="offline")
    agent("draining", status="draining")
    agent("unhealthy", status="unhealthy")
    agent("tripped", circuit_state="open", circuit_retry_at=timezone.now() + timezone.timedelta(minutes=1))
    Agent.objects.filter(pk=agent("wrong-skill").pk).update(capabilities=["translation"])
    queue(3)
    assert claim.claim() == []


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_is_registered_and_selectable_per_task(name, operator_client):
    response = operator_client.post(
        "/api/v1/tasks", {"type": "document_analysis", "strategy": name}, format="json"
    )
    assert response.status_code == 201 and response.json()["strategy"] == name


def test_every_registered_strategy_is_accepted_by_the_settings_check():
    from orchestrator_project.settings import _STRATEGIES

    assert set(_STRATEGIES) == set(STRATEGIES)


def test_a_round_without_any_free_agent_touches_no_task(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queue(5)
    full = agent("full", max_concurrency=1, current_load=1)
    with CaptureQueriesContext(connection) as queries:
        assert claim.claim() == []
    assert len(queries) == 1 and "FOR UPDATE" not in queries[0]["sql"]
    # Room again: the same round claims.
    Agent.objects.filter(pk=full.pk).update(current_load=0)
    assert len(claim.claim()) == 1


def test_a_round_with_nothing_due_touches_no_task(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    agent("idle")
    Task.objects.create(
        type="document_analysis",
        required_capabilities=["document_analysis"],
        next_attempt_at=timezone.now() + timedelta(minutes=5),  # backing off
    )
    with CaptureQueriesContext(connection) as queries:
        assert claim.claim() == []
    assert len(queries) == 1 and "FOR UPDATE" not in queries[0]["sql"]
