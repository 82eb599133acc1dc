"""An agent's load and figures move with its tasks' outcomes, one at a time or in a batch."""

import uuid

import pytest
from django.utils import timezone

from agents.models import Agent
from orchestrator_project.accounts.models import hash_token, new_raw_token
from tasks.engine.outcome import Outcome, OutcomeKind
from tasks.engine.outcomes import apply_outcomes
from tasks.models import Task


def in_flight_tasks(agent, count):
    tasks = [
        Task(type="t", required_capabilities=["t"], status="running", attempts=1, assigned_agent=agent)
        for _ in range(count)
    ]
    Task.objects.bulk_create(tasks)
    return tasks


@pytest.fixture
def agent(db):
    return Agent.objects.create(
        type="t",
        name="a",
        endpoint="http://127.0.0.1:1",
        capabilities=["t"],
        token_hash=hash_token(new_raw_token("aoa_")),
        signing_secret="whsec_AAAA",
        current_load=3,
        success_rate=0.5,
        avg_latency_ms=100.0,
        consecutive_failures=2,
        circuit_state="half_open",
    )


def test_a_batch_of_completions_moves_the_figures_as_that_many_single_ones_would(agent):
    tasks = in_flight_tasks(agent, 3)
    outcomes = [
        Outcome(
            task_id=t.pk,
            attempt=1,
            agent_id=agent.pk,
            kind=OutcomeKind.COMPLETED,
            result={"n": i},
            latency_ms=latency,
        )
        for i, (t, latency) in enumerate(zip(tasks, (10, 20, 30), strict=True))
    ]
    stale = Outcome(
        task_id=tasks[0].pk, attempt=7, agent_id=agent.pk, kind=OutcomeKind.COMPLETED, result="stale"
    )
    unknown = Outcome(
        task_id=uuid.uuid4(), attempt=1, agent_id=agent.pk, kind=OutcomeKind.COMPLETED, result="?"
    )
    assert apply_outcomes([*outcomes, stale, unknown], now=timezone.now()) == [True, True, True, False, False]
    agent.refresh_from_db()
    assert agent.current_load == 0 and agent.success_count == 3
    assert agent.consecutive_failures == 0 and agent.circuit_state == "closed"
    assert agent.success_rate == pytest.approx(1 - 0.5 * 0.9**3)
    assert agent.avg_latency_ms == pytest.approx(100 * 0.8**3 + 20 * (1 - 0.8**3))
    assert [Task.objects.get(pk=t.pk).result for t in tasks] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_completion_with_a_null_result_is_stored_as_json_null(agent):
    [task] = in_flight_tasks(agent, 1)
    assert apply_outcomes(
        [Outcome(task_id=task.pk, attempt=1, agent_id=agent.pk, kind=OutcomeKind.COMPLETED)]
    ) == [True]
    task.refresh_from_db()
    assert task.status == "completed" and task.result is None
