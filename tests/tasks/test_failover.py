"""Prompt failover (TASK_FAILOVER_ATTEMPTS): an agent that refuses a task (503, 429, no connection) on one
of its first attempts sends it at once to an agent it has not tried; the one that refused gets it back
only after the backoff. Other failures, and later refusals, wait their backoff as before."""

import socket
import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from tasks.engine import claim
from tasks.engine.outcome import Outcome, OutcomeKind
from tasks.engine.outcomes import apply_outcomes
from tasks.models import Task, TaskEvent

from .conftest import make_agent, queue_tasks, wait_until
from .test_dispatch_rules import settled, submit


@pytest.fixture
def failover(settings):
    settings.TASK_FAILOVER_ATTEMPTS = 1


def in_flight(agent, *, attempts=1, retry_base=0):
    return Task.objects.create(
        type="t",
        required_capabilities=["document_analysis"],
        status="running",
        attempts=attempts,
        retry_base=retry_base,
        assigned_agent=agent,
    )


def failed(task, agent, *, status_code=None, call_outcome="error", retry_after=None):
    outcome = Outcome(
        task_id=task.pk,
        attempt=task.attempts,
        agent_id=agent.pk,
        kind=OutcomeKind.RETRY,
        reason="refused" if status_code is None else f"agent answered HTTP {status_code}",
        status_code=status_code,
        retry_after=retry_after,
        counts_for_circuit=status_code != 429,
        call_outcome=call_outcome,
    )
    now = timezone.now()
    assert apply_outcomes([outcome], now=now) == [True]
    task.refresh_from_db()
    return now, TaskEvent.objects.filter(task_id=task.pk, kind="retrying").latest("id")


@pytest.mark.parametrize(
    "refusal",
    [{"status_code": 503}, {"status_code": 429}, {"call_outcome": "connection_error"}],
    ids=["503", "429", "no-connection"],
)
def test_a_refusal_on_the_first_attempt_is_due_at_once_for_other_agents(db, failover, refusal):
    agent = make_agent("refuses", current_load=1)
    task = in_flight(agent)
    now, event = failed(task, agent, retry_after=30, **refusal)
    assert task.status == "pending" and task.next_attempt_at == now
    assert task.avoid_agents == [agent.pk]
    # The agent that refused is off limits for the backoff, never sooner than its Retry-After.
    assert task.failover_until - now >= timedelta(seconds=30)
    assert event.details["retry_in_seconds"] == 0.0
    assert event.details["failover_seconds"] == pytest.approx(
        (task.failover_until - now).total_seconds(), abs=1e-3
    )


def test_the_api_says_until_when_the_task_is_failing_over(db, failover, operator_client):
    agent = make_agent("refuses", current_load=1)
    task = in_flight(agent)
    failed(task, agent, status_code=503, retry_after=30)
    shown = operator_client.get(f"/api/v1/tasks/{task.pk}").json()
    assert shown["status"] == "pending" and shown["failover_until"] is not None
    assert datetime.fromisoformat(shown["failover_until"]) == task.failover_until
    # Assigned again, it is an ordinary attempt: the field is cleared.
    make_agent("other")
    claim.claim()
    shown = operator_client.get(f"/api/v1/tasks/{task.pk}").json()
    assert shown["status"] == "assigned" and shown["failover_until"] is None
    listed = operator_client.get("/api/v1/tasks").json()["results"]
    assert [row["failover_until"] for row in listed] == [None]


@pytest.mark.parametrize(
    "failure",
    [{"status_code": 500}, {"call_outcome": "timeout"}, {"status_code": 502}],
    ids=["500", "timeout", "502"],
)
def test_other_failures_wait_their_backoff(db, failover, failure):
    agent = make_agent("fails", current_load=1)
    task = in_flight(agent)
    now, event = failed(task, agent, **failure)
    assert task.failover_until is None and "failover_seconds" not in event.details
    waits = (task.next_attempt_at - now).total_seconds()
    assert waits == pytest.approx(event.details["retry_in_seconds"], abs=1e-3) and waits >= 0


def test_a_refusal_after_the_first_attempts_waits_its_backoff(db, failover):
    agent = make_agent("refuses", current_load=2)
    second = in_flight(agent, attempts=2)
    now, event = failed(second, agent, status_code=503, retry_after=30)
    assert second.failover_until is None and second.next_attempt_at >= now + timedelta(seconds=30)
    # An operator's retry starts a new run: its first attempt may fail over again.
    rerun = in_flight(agent, attempts=3, retry_base=2)
    now, event = failed(rerun, agent, status_code=503)
    assert rerun.next_attempt_at == now and rerun.failover_until is not None


def test_a_retrys_live_message_says_when_it_is_due_and_whether_it_failed_over(
    transactional_db, failover, published
):
    agent = make_agent("refuses", current_load=2)
    refused, failing = in_flight(agent), in_flight(agent)
    failed(refused, agent, status_code=503, retry_after=30)
    failed(failing, agent, status_code=500)
    messages = {m["task_id"]: m for m in published(2)}
    refusal, failure = messages[str(refused.pk)], messages[str(failing.pk)]
    assert refusal["kind"] == "retrying" and refusal["agent_call_outcome"] == "error"
    assert refusal["retry_in_seconds"] == 0.0 and refusal["failover_seconds"] >= 30
    assert failure["retry_in_seconds"] >= 0 and "failover_seconds" not in failure


def test_off_every_retry_waits_its_backoff(db, settings):
    settings.TASK_FAILOVER_ATTEMPTS = 0
    agent = make_agent("refuses", current_load=1)
    task = in_flight(agent)
    now, event = failed(task, agent, status_code=503, retry_after=30)
    assert task.failover_until is None and task.next_attempt_at >= now + timedelta(seconds=30)


def assigned_to(task):
    task.refresh_from_db()
    return task.assigned_agent_id


def test_a_failed_over_task_waits_for_an_agent_it_has_not_tried(db):
    tried = make_agent("tried", max_concurrency=5)
    other = make_agent("other", max_concurrency=1, current_load=1)
    now = timezone.now()
    [task] = queue_tasks(1, avoid_agents=[tried.pk], attempts=1, failover_until=now + timedelta(seconds=60))
    # Only the agent that refused it has room: the task stays pending rather than go back to it.
    assert claim.claim() == []
    assert assigned_to(task) is None
    Agent.objects.filter(pk=other.pk).update(current_load=0)
    [assignment] = claim.claim()
    assert assignment.agent_id == other.pk
    task.refresh_from_db()
    assert task.status == "assigned" and task.failover_until is None


def test_after_its_failover_time_the_task_may_go_back_to_the_agent_it_tried(db):
    tried = make_agent("tried", max_concurrency=5)
    make_agent("other", max_concurrency=1, current_load=1)
    now = timezone.now()
    [task] = queue_tasks(1, avoid_agents=[tried.pk], attempts=1, failover_until=now + timedelta(seconds=60))
    [assignment] = claim.claim(now=now + timedelta(seconds=61))
    assert assignment.agent_id == tried.pk
    task.refresh_from_db()
    assert task.failover_until is None


def test_an_ordinary_retry_goes_back_to_the_agent_it_tried_when_no_other_has_room(db):
    tried = make_agent("tried", max_concurrency=5)
    make_agent("other", max_concurrency=1, current_load=1)
    queue_tasks(1, avoid_agents=[tried.pk], attempts=1)
    [assignment] = claim.claim()
    assert assignment.agent_id == tried.pk


# With a real worker and loopback agents. The backoff is long (Retry-After 60 s, a base of 60 s): a task
# that completes in seconds was failed over.


def first_attempt_refused(call):
    if call.body["attempt"] == 1:
        return 503, {"error": "busy"}, {"Retry-After": "60"}
    return 200, {"result": call.body["attempt"]}


def test_a_503_is_retried_at_once_on_another_agent(worker, operator_client, fake_agents, register, failover):
    first = fake_agents(first_attempt_refused)
    second = fake_agents(first_attempt_refused)
    # least_connections breaks ties by agent id: the first attempt goes to `first`.
    register(first, agent_id=uuid.UUID(int=1))
    register(second, agent_id=uuid.UUID(int=2))
    task = settled(submit(operator_client, strategy="least_connections"), "completed")
    assert task.attempts == 2 and task.result == 2
    assert [c.body["attempt"] for c in first.calls] == [1]
    assert [c.body["attempt"] for c in second.calls] == [2]
    retry = TaskEvent.objects.get(task_id=task.task_id, kind="retrying")
    assert retry.details["retry_in_seconds"] == 0.0 and retry.details["failover_seconds"] >= 60


def test_an_agent_that_refuses_connections_is_failed_over_at_once(
    worker, operator_client, fake_agents, register, failover, settings
):
    settings.TASK_RETRY_BACKOFF_BASE = 60
    # A bound socket that never listens: connecting to it is refused.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    try:
        register(fake_agents(lambda call: (200, {"result": "ok"})), agent_id=uuid.UUID(int=2))
        gone = register(fake_agents(), agent_id=uuid.UUID(int=1))
        Agent.objects.filter(pk=gone.pk).update(endpoint=f"http://127.0.0.1:{dead.getsockname()[1]}")
        task = settled(submit(operator_client, strategy="least_connections"), "completed")
    finally:
        dead.close()
    assert task.attempts == 2 and task.assigned_agent_id == uuid.UUID(int=2)
    retry = TaskEvent.objects.get(task_id=task.task_id, kind="retrying")
    assert "could not reach the agent" in retry.reason
    assert retry.details["retry_in_seconds"] == 0.0


def test_without_failover_a_503_waits_its_retry_after(
    worker, operator_client, fake_agents, register, settings
):
    settings.TASK_FAILOVER_ATTEMPTS = 0
    first = fake_agents(first_attempt_refused)
    second = fake_agents(first_attempt_refused)
    register(first, agent_id=uuid.UUID(int=1))
    register(second, agent_id=uuid.UUID(int=2))
    task_id = submit(operator_client, strategy="least_connections")
    retry = wait_until(
        lambda: TaskEvent.objects.filter(task_id=task_id, kind="retrying").first(), message="the retry"
    )
    task = Task.objects.get(task_id=task_id)
    assert task.status == "pending" and task.next_attempt_at >= retry.created_at + timedelta(seconds=60)
    assert len(second.calls) == 0
