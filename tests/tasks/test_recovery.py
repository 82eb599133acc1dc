"""Nothing is lost when processes die: real worker processes, killed, stalled and stopped."""

import signal
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.engine import claim, sweeps, wake
from tasks.engine.handback import hand_back_agent_tasks
from tasks.engine.outcome import Outcome, OutcomeKind
from tasks.engine.outcomes import apply_outcomes
from tasks.models import Task, TaskEvent
from tests.processes import start_worker

from .conftest import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(tmp_path, transactional_db):
    started = []

    def worker(name, **env):
        child = start_worker(name, tmp_path, LEASE_GRACE_SECONDS=1, **env)
        started.append(child)
        return child

    yield worker
    for child in started:
        child.stop()


def create_tasks(count, **fields):
    now = timezone.now()
    tasks = [
        Task(
            type="document_analysis",
            required_capabilities=["document_analysis"],
            next_attempt_at=now,
            **fields,
        )
        for _ in range(count)
    ]
    Task.objects.bulk_create(tasks)
    wake.ring()
    return tasks


def test_a_worker_killed_mid_call_loses_nothing_and_the_task_completes_once(processes, fake_agents, register):
    first_call_may_answer = threading.Event()

    def behaviour(call):
        if call.body["attempt"] == 1:
            return lambda: (first_call_may_answer.wait(20), (200, {"result": "from the dead worker"}))[1]
        return 200, {"result": "from the new worker"}

    fake = fake_agents(behaviour)
    register(fake)
    doomed = processes("doomed")
    [task] = create_tasks(1, timeout_seconds=2)
    fake.wait_for_calls(1)
    doomed.kill()  # SIGKILL in the middle of the agent call
    first_call_may_answer.set()

    processes("replacement")
    # The sweep (run by beat every few seconds) finds the expired lease and hands the task out again.
    wait_until(
        lambda: Task.objects.get(pk=task.pk).lease_expires_at < timezone.now(),
        timeout=10,
        message="the lease to expire",
    )
    assert sweeps.run_sweep()["leases_expired"] == 1
    wake.ring()
    done = wait_until(
        lambda: Task.objects.filter(pk=task.pk, status="completed").first(), message="completion"
    )
    assert done.result == "from the new worker" and done.attempts == 2
    assert [c.body["attempt"] for c in fake.calls] == [1, 2]
    assert TaskEvent.objects.filter(task=task, kind="completed").count() == 1
    assert "lease expired" in TaskEvent.objects.get(task=task, kind="retrying").reason


def test_two_workers_never_dispatch_a_task_twice(processes, fake_agents, register):
    fakes = [fake_agents() for _ in range(4)]
    for fake in fakes:
        register(fake, max_concurrency=50)
    processes("w1")
    processes("w2")
    tasks = create_tasks(300)
    wait_until(lambda: Task.objects.filter(status="completed").count() == 300, timeout=60, message="300 done")
    ours = {str(t.task_id) for t in tasks}
    # Only calls for this test's tasks: a concurrent test run on the machine may reuse a port of ours.
    calls = Counter(c.body["task_id"] for fake in fakes for c in fake.calls if c.body.get("task_id") in ours)
    assert set(calls) == ours and set(calls.values()) == {1}
    assert set(Task.objects.values_list("attempts", flat=True)) == {1}
    assert TaskEvent.objects.filter(kind="assigned").count() == 300


def test_sigterm_lets_calls_in_flight_finish(processes, fake_agents, register):
    fake = fake_agents(lambda call: lambda: (time.sleep(1), (200, {"result": "finished"}))[1])
    register(fake)
    worker = processes("graceful", WORKER_SHUTDOWN_GRACE=20)
    tasks = create_tasks(5)
    fake.wait_for_calls(5)
    worker.stop()
    assert Task.objects.filter(pk__in=[t.pk for t in tasks], status="completed").count() == 5


def test_sigterm_hands_back_calls_that_outlast_the_grace_period(processes, fake_agents, register):
    fake = fake_agents(lambda call: lambda: (time.sleep(8), (200, {"result": "too late"}))[1])
    register(fake)
    worker = processes("impatient", WORKER_SHUTDOWN_GRACE=0.5)
    tasks = create_tasks(3)
    fake.wait_for_calls(3)
    worker.signal(signal.SIGTERM)
    worker.proc.wait(30)
    for task in Task.objects.filter(pk__in=[t.pk for t in tasks]):
        assert task.status == "pending" and task.assigned_agent_id is None
        assert TaskEvent.objects.get(task=task, kind="reassigned").reason == "worker shutting down"
        # The hand-back does not charge the retry budget.
        assert task.retry_base == 1


def test_a_stale_worker_cannot_overwrite_a_newer_attempt(db, fake_agents, register):
    agent = register(fake_agents())
    [task] = create_tasks(1)
    [first] = claim.claim()
    Task.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    sweeps.run_sweep()
    Task.objects.filter(pk=task.pk).update(next_attempt_at=timezone.now())
    [second] = claim.claim()
    assert (first.attempt, second.attempt) == (1, 2)
    late = Outcome(task_id=task.pk, attempt=1, agent_id=agent.pk, kind=OutcomeKind.COMPLETED, result="stale")
    assert apply_outcomes([late]) == [False]
    fresh = Outcome(task_id=task.pk, attempt=2, agent_id=agent.pk, kind=OutcomeKind.COMPLETED, result="fresh")
    assert apply_outcomes([fresh]) == [True]
    assert Task.objects.get(pk=task.pk).result == "fresh"


def test_a_deadline_fails_the_task_instead_of_retrying(db, fake_agents, register):
    register(fake_agents())
    [task] = create_tasks(1, deadline=timezone.now() + timedelta(seconds=30))
    claim.claim()
    Task.objects.filter(pk=task.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    summary = sweeps.run_sweep()
    assert summary["deadlines_failed"] == 1
    task.refresh_from_db()
    assert task.status == "failed" and task.error == {"message": "deadline passed"}
    assert task.assigned_agent.current_load == 0


def test_two_sweeps_at_once_act_once(transactional_db, fake_agents, register):
    register(fake_agents(), max_concurrency=20)
    tasks = create_tasks(20)
    claim.claim()
    Task.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    results = []
    barrier = threading.Barrier(2)

    def sweep():
        barrier.wait()
        results.append(sweeps.run_sweep())

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    acted = [r for r in results if r is not None]
    assert sum(r["leases_expired"] for r in acted) == 20
    assert TaskEvent.objects.filter(kind="retrying").count() == len(tasks)


def test_handing_back_an_agents_tasks_requeues_them_without_charging_retries(db, fake_agents, register):
    agent = register(fake_agents())
    create_tasks(3)
    claim.claim()
    assert hand_back_agent_tasks(agent_ids=[agent.pk], reason="agent offline") == 3
    agent.refresh_from_db()
    assert agent.current_load == 0
    assert set(Task.objects.values_list("status", "retry_base")) == {("pending", 1)}
    assert hand_back_agent_tasks(agent_ids=[uuid.uuid4()], reason="nobody") == 0
