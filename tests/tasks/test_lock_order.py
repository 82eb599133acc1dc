"""Agents before tasks: an operator's cancel takes locks in the order a batch of outcomes does, so the
two wait for each other instead of deadlocking."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from agents.models import Agent
from orchestrator_project.errors import Conflict, NotFound
from tasks import services
from tasks.engine.sweeps import run_sweep
from tasks.models import Task

from .conftest import make_agent


@pytest.mark.django_db(transaction=True)
def test_a_cancel_does_not_deadlock_with_a_batch_of_outcomes_on_the_same_task():
    agent = make_agent("busy", max_concurrency=5, current_load=1)
    task = Task.objects.create(type="t", status="running", attempts=1, assigned_agent=agent)
    params = connection.get_connection_params()
    # The worker's writer, mid-batch: it holds the agent's row (capacity.lock comes first) and is about
    # to update the task.
    writer = psycopg.connect(**params)
    writer.execute("SELECT 1 FROM agents_agent WHERE agent_id = %s FOR UPDATE", [agent.agent_id])
    done = {}

    def cancel():
        try:
            done["task"] = services.cancel_task(task_id=task.task_id)
        except Exception as exc:  # reported below, in the test's thread
            done["error"] = exc
        finally:
            connection.close()

    pids = set()

    def wait_for_the_cancel_to_block():
        with psycopg.connect(**params, autocommit=True) as watcher:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                rows = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> %s",
                    [writer.info.backend_pid],
                ).fetchall()
                if rows:
                    pids.update(row[0] for row in rows)
                    return
                time.sleep(0.01)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    wait_for_the_cancel_to_block()
    assert pids, "the cancel never waited for the writer's agent row"
    # The writer goes on to the task's row. Had the cancel locked the task first, this would wait for
    # it while it waits for the agent: a deadlock, which Postgres breaks by failing one of them.
    writer.execute("SET lock_timeout = '5s'")
    writer.execute("SELECT 1 FROM tasks_task WHERE task_id = %s FOR UPDATE", [task.task_id])
    writer.commit()  # the batch ends (this one changed nothing)
    writer.close()
    canceller.join(timeout=10)
    assert not canceller.is_alive()
    assert "error" not in done, done.get("error")
    assert done["task"].status == "cancelled"
    assert Agent.objects.get(pk=agent.pk).current_load == 0  # its slot is free again


@pytest.mark.django_db(transaction=True)
def test_a_cancel_still_conflicts_on_an_ended_task_and_404s_on_an_unknown_one():
    task = Task.objects.create(type="t", status="completed")
    with pytest.raises(Conflict):
        services.cancel_task(task_id=task.task_id)
    with pytest.raises(NotFound):
        services.cancel_task(task_id="00000000-0000-4000-8000-000000000000")


@pytest.mark.django_db(transaction=True)
def test_the_deadline_sweep_leaves_a_task_whose_agent_is_held_for_next_time():
    # The sweep's transaction holds the agents of expired leases already; waiting for more agents there
    # could deadlock with a batch of outcomes, so it waits for none.
    agent = make_agent("held", max_concurrency=5, current_load=1)
    late = timezone.now() - timedelta(seconds=1)
    task = Task.objects.create(type="t", status="running", attempts=1, assigned_agent=agent, deadline=late)
    pending = Task.objects.create(type="t", deadline=late)  # no agent: nothing to wait for
    writer = psycopg.connect(**connection.get_connection_params())
    writer.execute("SELECT 1 FROM agents_agent WHERE agent_id = %s FOR UPDATE", [agent.agent_id])
    found = {}
    sweeper = threading.Thread(target=lambda: (found.update(run_sweep()), connection.close()))
    sweeper.start()
    sweeper.join(timeout=10)
    assert not sweeper.is_alive(), "the sweep waited for the held agent"
    assert found["deadlines_failed"] == 1
    assert Task.objects.get(pk=pending.pk).status == "failed"
    assert Task.objects.get(pk=task.pk).status == "running"
    writer.rollback()
    writer.close()
    assert run_sweep()["deadlines_failed"] == 1  # the next sweep finds it free
    assert Task.objects.get(pk=task.pk).status == "failed"
    assert Agent.objects.get(pk=agent.pk).current_load == 0
