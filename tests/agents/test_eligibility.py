"""The one rule of who takes work: dispatch's SQL, an operator's Python check and the slot reservation
agree on every combination of status, circuit, load and probe time."""

import itertools
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from agents import capacity, eligibility
from agents.models import Agent, AgentStatus, CircuitState
from orchestrator_project.accounts.models import hash_token, new_raw_token

MAX = 2
LOADS = (0, 1, MAX)
RETRY_TIMES = ("none", "past", "future")


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def every_kind_of_agent(db, now):
    """One agent per combination; returns {agent_id: (status, circuit, load, retry)}."""
    combinations = list(itertools.product(AgentStatus.values, CircuitState.values, LOADS, RETRY_TIMES))
    retry_at = {"none": None, "past": now - timedelta(seconds=1), "future": now + timedelta(minutes=1)}
    agents = Agent.objects.bulk_create(
        Agent(
            type="t",
            name=f"agent {index}",
            endpoint=f"http://127.0.0.1:9/{index}",
            capabilities=["t"],
            status=status,
            circuit_state=circuit,
            current_load=load,
            max_concurrency=MAX,
            circuit_retry_at=retry_at[retry],
            token_hash=hash_token(new_raw_token("aoa_")),
            signing_secret="whsec_AAAA",
        )
        for index, (status, circuit, load, retry) in enumerate(combinations)
    )
    return {agent.agent_id: combination for agent, combination in zip(agents, combinations, strict=True)}


def _eligible_in_sql(now):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT agent_id FROM agents_agent WHERE {eligibility.ELIGIBLE_SQL}", {"now": now})
        return {row[0] for row in cursor.fetchall()}


def test_sql_and_python_agree_on_every_combination(every_kind_of_agent, now):
    in_python = {agent.agent_id for agent in Agent.objects.all() if not eligibility.refusal(agent, now)}
    assert in_python == _eligible_in_sql(now)
    # The table of the rule, spelled out: online, and closed with room or open with its probe due.
    expected = {
        agent_id
        for agent_id, (status, circuit, load, retry) in every_kind_of_agent.items()
        if status == AgentStatus.ONLINE
        and (
            (circuit == CircuitState.CLOSED and load < MAX)
            or (circuit == CircuitState.OPEN and retry == "past" and load == 0)
        )
    }
    assert in_python == expected
    assert len(expected) == 7  # closed with room (2 loads x 3 retry times) and the one probe


def test_a_refusal_says_why(every_kind_of_agent, now):
    agent = {every_kind_of_agent[a.agent_id]: a for a in Agent.objects.all()}
    assert "lacks required capabilities: missing" in eligibility.refusal(
        agent["online", "closed", 0, "none"], now, ["t", "missing"]
    )
    assert eligibility.refusal(agent["draining", "closed", 0, "none"], now).endswith("is draining")
    assert eligibility.refusal(agent["online", "closed", MAX, "none"], now).endswith("is full (2/2 tasks)")
    assert "open until" in eligibility.refusal(agent["online", "open", 0, "future"], now)
    assert "tasks still in flight" in eligibility.refusal(agent["online", "open", 1, "past"], now)


def test_a_reservation_of_one_slot_succeeds_exactly_for_eligible_agents(every_kind_of_agent, now):
    eligible = _eligible_in_sql(now)
    taken = set()
    for agent_id, (_, circuit, _, _) in every_kind_of_agent.items():
        with transaction.atomic():
            probes = {agent_id} if eligibility.is_probe_state(circuit) else set()
            taken |= capacity.reserve({agent_id: 1}, probes=probes, now=now)
            transaction.set_rollback(True)
    assert taken == eligible


def test_a_probe_flips_its_circuit_half_open_and_takes_exactly_one(every_kind_of_agent, now):
    [probe_id] = [a for a, c in every_kind_of_agent.items() if c == ("online", "open", 0, "past")]
    assert capacity.reserve({probe_id: 1}, probes={probe_id}, now=now) == {probe_id}
    agent = Agent.objects.get(pk=probe_id)
    assert (agent.circuit_state, agent.current_load) == (CircuitState.HALF_OPEN, 1)
    assert eligibility.refusal(agent, now).endswith("half-open (its probe task is out)")
    assert capacity.reserve({probe_id: 1}, probes={probe_id}, now=now) == set()
