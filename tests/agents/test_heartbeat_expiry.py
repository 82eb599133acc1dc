"""The liveness sweep: an agent whose heartbeat deadline passes goes offline, once, and loses its work."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import jobs
from agents.liveness import expire_stale_agents
from agents.locks import try_sweep_lock
from agents.models import Agent, AgentStatus, AgentStatusChange
from agents.services import OFFLINE_HEARTBEAT_EXPIRED
from tasks.models import TaskStatus
from tests.agents.conftest import make_agent, task_on


def offline_changes(agent):
    return AgentStatusChange.objects.filter(agent=agent, new_status=AgentStatus.OFFLINE)


def test_an_agent_goes_offline_at_its_timeout_and_not_before(alice):
    deadline = alice.heartbeat_expires_at
    assert deadline == alice.last_heartbeat + timedelta(seconds=alice.heartbeat_timeout)

    with time_machine.travel(deadline - timedelta(milliseconds=1), tick=False):
        assert expire_stale_agents(now=timezone.now()) == []
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.ONLINE

    with time_machine.travel(deadline, tick=False):
        assert expire_stale_agents(now=timezone.now()) == [alice.pk]

    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.OFFLINE
    change = offline_changes(alice).get()
    assert (change.old_status, change.reason) == ("online", OFFLINE_HEARTBEAT_EXPIRED)
    assert change.created_at == deadline


def test_a_heartbeat_moves_the_deadline(alice, alice_client):
    first = alice.heartbeat_expires_at
    alice_client.post(f"/api/v1/agents/{alice.pk}/heartbeat")
    alice.refresh_from_db()

    with time_machine.travel(first, tick=False):
        assert expire_stale_agents(now=timezone.now()) == []


def test_draining_and_unhealthy_agents_expire_too_but_offline_ones_are_left_alone(db):
    agents = [make_agent(name) for name in ("d", "u", "o")]
    for agent, status in zip(agents, ["draining", "unhealthy", "offline"], strict=True):
        Agent.objects.filter(pk=agent.pk).update(status=status)

    expired = expire_stale_agents(now=timezone.now() + timedelta(hours=1))

    assert sorted(expired) == sorted(agent.pk for agent in agents[:2])
    assert AgentStatusChange.objects.filter(new_status="offline").count() == 2


def test_an_expired_agents_in_flight_tasks_are_handed_back(alice):
    task = task_on(alice, TaskStatus.RUNNING)

    expire_stale_agents(now=timezone.now() + timedelta(hours=1))

    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING
    assert task.assigned_agent_id is None
    assert Agent.objects.get(pk=alice.pk).current_load == 0


def test_the_beat_job_uses_the_database_clock(alice):
    assert jobs.expire_stale_agents() == 0
    Agent.objects.filter(pk=alice.pk).update(heartbeat_expires_at=timezone.now() - timedelta(seconds=1))

    assert jobs.expire_stale_agents() == 1


def test_the_sweep_is_one_query(alice):
    with CaptureQueriesContext(connection) as queries:
        expire_stale_agents(now=timezone.now() + timedelta(hours=1))
    sweep = [q["sql"] for q in queries.captured_queries if "agents_agent" in q["sql"]]
    assert len(sweep) == 1


def test_a_sweep_skips_its_turn_while_another_holds_the_lock(transactional_db):
    agent = make_agent("held")

    holding, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                assert try_sweep_lock("agents.expire_stale_agents")
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        assert expire_stale_agents(now=timezone.now() + timedelta(hours=1)) == []
    finally:
        release.set()
        holder.join(10)
    assert expire_stale_agents(now=timezone.now() + timedelta(hours=1)) == [agent.pk]


@pytest.mark.parametrize("attempt", range(3))  # a race shows itself more often when run a few times
def test_two_concurrent_sweeps_record_each_change_exactly_once(transactional_db, attempt):
    agents = [make_agent(f"agent-{i}") for i in range(20)]
    later = timezone.now() + timedelta(hours=1)
    start = threading.Barrier(2)
    results, errors = [], []

    def sweep():
        try:
            start.wait(10)
            results.append(expire_stale_agents(now=later))
        except Exception as exc:  # surfaced below: an assertion in a thread would be lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(results[0] + results[1]) == sorted(agent.pk for agent in agents)
    assert AgentStatusChange.objects.filter(new_status="offline").count() == len(agents)
    assert not Agent.objects.exclude(status="offline").exists()
