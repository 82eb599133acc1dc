"""The dispatch contract, with a real worker and loopback agents: every rule of the engine."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from tasks.models import Task, TaskEvent

from .conftest import wait_until

TASKS = "/api/v1/tasks"


@pytest.fixture
def fast_retries(settings):
    settings.TASK_RETRY_BACKOFF_BASE = 0.05
    settings.TASK_RETRY_BACKOFF_MAX = 0.2


def submit(client, **fields):
    response = client.post(TASKS, {"type": "document_analysis", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["task_id"]


def settled(task_id, *statuses):
    return wait_until(
        lambda: Task.objects.filter(task_id=task_id, status__in=statuses).first(),
        message=f"task {task_id} to become {statuses}",
    )


def kinds(task_id):
    return list(TaskEvent.objects.filter(task_id=task_id).order_by("id").values_list("kind", flat=True))


def test_the_most_urgent_task_goes_first(worker, operator_client, fake_agents, register):
    release = threading.Event()
    fake = fake_agents(lambda call: lambda: (release.wait(10), (200, {"result": call.body["priority"]}))[1])
    register(fake, max_concurrency=1)
    blocker = submit(operator_client, priority=5)
    fake.wait_for_calls(1)
    # While the only slot is busy, queue work of mixed urgency; 1 is the most urgent.
    waiting = [submit(operator_client, priority=p) for p in (9, 3, 1, 7, 3)]
    release.set()
    for task_id in waiting:
        settled(task_id, "completed")
    settled(blocker, "completed")
    assert [c.body["priority"] for c in fake.calls[1:]] == [1, 3, 3, 7, 9]
    # Equal priority: the older task first.
    assert [c.body["task_id"] for c in fake.calls if c.body["priority"] == 3] == [waiting[1], waiting[4]]


def test_server_errors_are_retried_with_backoff_then_succeed(
    worker, operator_client, fake_agents, register, fast_retries
):
    answers = iter([(500, {"error": "boom"}), (503, {"error": "busy"})])
    fake = fake_agents(lambda call: next(answers, (200, {"result": "ok"})))
    register(fake)
    task_id = submit(operator_client)
    task = settled(task_id, "completed")
    assert task.attempts == 3 and task.result == "ok"
    assert [c.body["attempt"] for c in fake.calls] == [1, 2, 3]
    assert kinds(task_id) == [
        "created",
        "assigned",
        "sent",
        "retrying",
        "assigned",
        "sent",
        "retrying",
        "assigned",
        "sent",
        "completed",
    ]
    retries = TaskEvent.objects.filter(task_id=task_id, kind="retrying").order_by("id")
    assert [e.reason for e in retries] == ["agent answered HTTP 500", "agent answered HTTP 503"]
    # Full jitter within the exponential ceiling: attempt n waits at most base * 2**(n-1).
    assert all(0 <= e.details["retry_in_seconds"] <= 0.05 * 2**i for i, e in enumerate(retries))


def test_retries_stop_after_max_retries_and_the_task_fails(
    worker, operator_client, fake_agents, register, fast_retries
):
    fake = fake_agents(lambda call: (500, {"error": "always"}))
    register(fake)
    task_id = submit(operator_client, max_retries=2)
    task = settled(task_id, "failed")
    assert task.attempts == 3 and len(fake.calls) == 3
    assert "retries exhausted" in TaskEvent.objects.get(task_id=task_id, kind="failed").reason
    assert task.error["message"] == "always"


def test_a_client_error_fails_the_task_without_retry(worker, operator_client, fake_agents, register):
    fake = fake_agents(lambda call: (422, {"error": "document is not a PDF"}))
    register(fake)
    task_id = submit(operator_client)
    task = settled(task_id, "failed")
    assert len(fake.calls) == 1
    assert task.error == {"status_code": 422, "message": "document is not a PDF"}


def test_410_fails_the_task_and_retires_the_agent(worker, operator_client, fake_agents, register):
    fake = fake_agents(lambda call: (410, {"error": "gone"}))
    agent = register(fake)
    settled(submit(operator_client), "failed")
    agent.refresh_from_db()
    assert agent.status == "draining" and agent.drained_by_operator
    assert agent.status_changes.filter(new_status="draining", reason__startswith="retired").count() == 1


@pytest.mark.parametrize("failover_attempts", [1, 0], ids=["failing-over", "not-failing-over"])
def test_429_is_retried_no_sooner_than_retry_after(
    worker, operator_client, fake_agents, register, fast_retries, settings, failover_attempts
):
    settings.TASK_FAILOVER_ATTEMPTS = failover_attempts
    answers = iter([(429, {"error": "slow down"}, {"Retry-After": "1"})])
    fake = fake_agents(lambda call: next(answers, (200, {"result": "ok"})))
    register(fake)
    task_id = submit(operator_client)
    settled(task_id, "completed")
    first, second = fake.calls
    assert second.at - first.at >= 1.0
    details = TaskEvent.objects.get(task_id=task_id, kind="retrying").details
    if failover_attempts:
        # Due at once for another agent (there is none); the agent that said 429 waited its Retry-After.
        assert details["retry_in_seconds"] == 0.0 and details["failover_seconds"] >= 1.0
    else:
        assert details["retry_in_seconds"] >= 1.0


def test_a_retry_prefers_another_capable_agent(worker, operator_client, fake_agents, register, fast_retries):
    broken = fake_agents(lambda call: (500, {"error": "broken"}))
    healthy = fake_agents()
    register(broken, name="a-broken")
    register(healthy, name="b-healthy", max_concurrency=1)
    # least_connections breaks ties by id; make the broken agent the first choice.
    Agent.objects.filter(endpoint=healthy.url).update(current_load=0, max_concurrency=2)
    for _ in range(4):
        task_id = submit(operator_client)
        task = settled(task_id, "completed")
        agents = list(
            TaskEvent.objects.filter(task_id=task_id, kind="assigned").values_list("agent_id", flat=True)
        )
        assert len(agents) == len(set(agents)), "a retry went back to the agent that just failed"
        assert task.assigned_agent.endpoint == healthy.url


def test_a_task_for_a_capability_nobody_offers_waits(worker, operator_client, fake_agents, register):
    fake = fake_agents()
    register(fake, capabilities=["translation"])
    task_id = submit(operator_client)
    submit(operator_client, type="translation")
    fake.wait_for_calls(1)
    assert Task.objects.get(task_id=task_id).status == "pending"
    assert len(fake.calls) == 1


def test_the_circuit_opens_lets_one_probe_through_and_closes(
    worker, operator_client, fake_agents, register, settings, fast_retries
):
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 2
    settings.CIRCUIT_BREAKER_RECOVERY_TIMEOUT = 1
    healthy = threading.Event()
    fake = fake_agents(lambda call: (200, {"result": "ok"}) if healthy.is_set() else (500, {"error": "down"}))
    agent = register(fake)
    first = submit(operator_client, max_retries=0)
    second = submit(operator_client, max_retries=0)
    settled(first, "failed")
    settled(second, "failed")
    agent.refresh_from_db()
    assert agent.circuit_state == "open" and agent.consecutive_failures == 2

    healthy.set()
    waiting = [submit(operator_client) for _ in range(5)]
    # While open, nothing is sent; after the recovery timeout exactly one probe goes first.
    time_open = agent.circuit_opened_at
    wait_until(lambda: len(fake.calls) >= 3, message="the probe")
    probe = fake.calls[2]
    assert probe.at - fake.calls[1].at >= 0.9  # no call while the circuit was open
    for task_id in waiting:
        settled(task_id, "completed")
    agent.refresh_from_db()
    assert agent.circuit_state == "closed" and agent.consecutive_failures == 0
    assert time_open is not None


def test_a_half_open_circuit_lets_exactly_one_probe_through(db, fake_agents, register, settings):
    from tasks.engine import claim

    fake = fake_agents()
    agent = register(fake)
    Agent.objects.filter(pk=agent.pk).update(
        circuit_state="open", circuit_retry_at=timezone.now() - timedelta(1)
    )
    for _ in range(5):
        Task.objects.create(type="document_analysis", required_capabilities=["document_analysis"])
    assignments = claim.claim()
    assert len(assignments) == 1
    agent.refresh_from_db()
    assert agent.circuit_state == "half_open" and agent.current_load == 1
    assert claim.claim() == []


def test_the_agent_sees_a_verifiable_signature_and_rejects_a_forged_one(
    worker, operator_client, fake_agents, register
):
    fake = fake_agents()
    register(fake)
    settled(submit(operator_client), "completed")
    assert fake.calls[0].signature_valid
    impostor = fake_agents()
    register(impostor, capabilities=["translation"])
    Agent.objects.filter(endpoint=impostor.url).update(signing_secret=fake.signing_secret)
    # Signed with another agent's secret: the agent's verification fails and it refuses the request.
    task_id = submit(operator_client, type="translation")
    settled(task_id, "failed")
    assert impostor.calls[0].signature_valid is False


def test_an_accepted_task_completes_with_exactly_one_result(worker, operator_client, fake_agents, register):
    fake = fake_agents(lambda call: (202, {"accepted": True}))
    agent = register(fake)
    token_holder = operator_client
    task_id = submit(operator_client)
    settled(task_id, "running")
    wait_until(lambda: "started" in kinds(task_id), message="the started event")
    callback = fake.calls[0].body["callback_url"].split("8006", 1)[-1].split("127.0.0.1", 1)[-1]
    callback = callback[callback.index("/api/") :]

    results = []
    barrier = threading.Barrier(4)

    def report(n):
        barrier.wait()
        results.append(
            token_holder.post(
                callback, {"status": "completed", "result": {"n": n}}, format="json"
            ).status_code
        )

    threads = [threading.Thread(target=report, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == [200, 409, 409, 409]
    task = Task.objects.get(task_id=task_id)
    assert task.status == "completed" and task.result in ({"n": 0}, {"n": 1}, {"n": 2}, {"n": 3})
    assert kinds(task_id).count("completed") == 1
    agent.refresh_from_db()
    assert agent.current_load == 0


def test_an_agent_token_reports_only_its_own_tasks(worker, operator_client, fake_agents, register):
    from rest_framework.test import APIClient

    from orchestrator_project.accounts.models import hash_token, new_raw_token

    fake = fake_agents(lambda call: (202, {}))
    owner = register(fake)
    other_raw = new_raw_token("aoa_")
    other = register(fake_agents(), capabilities=["translation"])
    Agent.objects.filter(pk=other.pk).update(token_hash=hash_token(other_raw))
    owner_raw = new_raw_token("aoa_")
    Agent.objects.filter(pk=owner.pk).update(token_hash=hash_token(owner_raw))
    task_id = submit(operator_client)
    settled(task_id, "running")

    intruder = APIClient()
    intruder.credentials(HTTP_AUTHORIZATION=f"Bearer {other_raw}")
    assert (
        intruder.post(f"{TASKS}/{task_id}/result", {"status": "completed"}, format="json").status_code == 404
    )
    assert intruder.get(f"{TASKS}/{task_id}").status_code == 403
    owner_client = APIClient()
    owner_client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner_raw}")
    stale = owner_client.post(f"{TASKS}/{task_id}/result?attempt=7", {"status": "completed"}, format="json")
    assert stale.status_code == 409
    done = owner_client.post(
        f"{TASKS}/{task_id}/result?attempt=1", {"status": "completed", "result": 42}, format="json"
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert Task.objects.get(task_id=task_id).result == 42


def test_hundreds_of_slow_agent_calls_are_in_flight_at_once(worker, operator_client, fake_agents, register):
    fakes = [
        fake_agents(lambda call: lambda: (time.sleep(2), (200, {"result": "slow"}))[1]) for _ in range(10)
    ]
    for fake in fakes:
        register(fake, max_concurrency=10)
    started = time.monotonic()
    response = operator_client.post(
        f"{TASKS}/bulk", {"tasks": [{"type": "document_analysis"}] * 100}, format="json"
    )
    assert response.status_code == 201
    wait_until(lambda: Task.objects.filter(status="completed").count() == 100, timeout=60, message="100 done")
    elapsed = time.monotonic() - started
    # One at a time this is 100 x 2 s = 200 s; with the calls in flight together it is about 2 s.
    assert elapsed < 20, elapsed
    assert sum(len(f.calls) for f in fakes) == 100
