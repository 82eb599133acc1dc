"""Every state change of a task or an agent leaves one outbox event, in the statement that makes it,
numbered in order per entity; nothing else does, and with EVENT_SINK=none nothing at all."""

from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import capacity
from agents import services as agent_services
from agents.capacity import Verdict
from orchestrator_project.outbox.models import EntitySequence, OutboxEvent
from tasks import services
from tasks.models import EventKind, Task
from tasks.serializers import TaskCreateSerializer
from tasks.transitions import Step, move

TASK = "io.orchestrator.task."
AGENT = "io.orchestrator.agent."


def events_of(entity_id):
    """The entity's events in order, each payload's `at` read as a time (Postgres writes RFC 3339 with
    trailing zeros of the fraction trimmed, Python's isoformat keeps them)."""
    events = list(OutboxEvent.objects.filter(aggregateid=entity_id).order_by("sequence"))
    for event in events:
        event.payload["at"] = datetime.fromisoformat(event.payload["at"])
    return events


def valid(**fields):
    serializer = TaskCreateSerializer(data={"type": "summarise", **fields})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def new_task(**fields):
    task, _ = services.create_task(data=valid(**fields))
    return task


def register(name="ada", **fields):
    agent, _, _ = agent_services.register_agent(
        endpoint=f"http://127.0.0.1:9/{name}", type="llm", name=name, capabilities=["summarise"], **fields
    )
    return agent


def test_creating_a_task_writes_its_created_event_in_the_same_statement(db):
    with CaptureQueriesContext(connection) as queries:
        task = new_task(priority=2, required_capabilities=["summarise"])
    # In the test's transaction the INSERT runs inside a savepoint (services.create_task says why).
    assert [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]] == [queries[1]["sql"]]
    [event] = events_of(task.task_id)
    assert (event.aggregatetype, event.type, event.sequence) == ("task", TASK + "created.v1", 1)
    assert event.payload == {
        "task_id": str(task.task_id),
        "type": "summarise",
        "priority": 2,
        "required_capabilities": ["summarise"],
        "status": "pending",
        "attempt": 0,
        "at": task.created_at,
    }
    assert event.created_at == task.created_at and event.published_at is None


@pytest.mark.parametrize("size", [3, services.INSERT_MAX_ROWS + 1], ids=["insert", "copy"])
def test_a_bulk_creation_writes_one_created_event_per_task(db, size):
    tasks = services.create_tasks_bulk(items=[valid()] * size)
    assert len(tasks) == size
    for task in tasks:
        [event] = events_of(task.task_id)
        assert (event.type, event.sequence, event.payload["task_id"]) == (
            TASK + "created.v1",
            1,
            str(task.task_id),
        )


def test_every_move_writes_a_status_changed_event_numbered_after_the_last(db):
    task = new_task()
    agent_id = register("ada-tasks").agent_id
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        move(
            EventKind.ASSIGNED,
            [Step(task.task_id, 0, agent_id)],
            now=now,
            assignments="attempts = t.attempts + 1",
        )
    assert len(queries) == 1
    move(EventKind.COMPLETED, [Step(task.task_id, 1, agent_id)], now=now + timedelta(seconds=1))
    created, assigned, completed = events_of(task.task_id)
    assert [e.sequence for e in (created, assigned, completed)] == [1, 2, 3]
    assert assigned.type == completed.type == TASK + "status_changed.v1"
    assert assigned.payload == {
        "task_id": str(task.task_id),
        "transition": "assigned",
        "status": "assigned",
        "attempt": 1,
        "agent_id": str(agent_id),
        "reason": "",
        "type": "summarise",
        "priority": task.priority,
        "at": now,
    }
    assert (completed.payload["transition"], completed.payload["status"]) == ("completed", "completed")
    assert Task.objects.get(task_id=task.task_id).event_sequence == 3


def test_a_move_that_does_not_happen_writes_nothing(db):
    task = new_task()
    move(EventKind.COMPLETED, [Step(task.task_id, 0)], now=timezone.now())  # it is pending: no such move
    assert len(events_of(task.task_id)) == 1


def test_a_change_rolled_back_leaves_no_event(db):
    task = new_task()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.cancel_task(task_id=task.task_id)
        raise RuntimeError("the caller's transaction fails after the move")
    assert [e.payload.get("transition") for e in events_of(task.task_id)] == [None]


def test_an_agent_publishes_its_registration_status_and_circuit_changes_and_its_end(db, settings):
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 1
    agent = register()
    agent_services.heartbeat(agent_id=agent.agent_id)  # changes nothing: no event
    agent_services.drain(agent_id=agent.agent_id)
    agent_services.resume(agent_id=agent.agent_id)
    now = timezone.now()
    with transaction.atomic():
        capacity.reserve({agent.agent_id: 1}, probes=set(), now=now)
        capacity.release(agent.agent_id, verdict=Verdict.FAILURE, now=now)  # trips the breaker
    with transaction.atomic():
        later = now + timedelta(seconds=settings.CIRCUIT_BREAKER_RECOVERY_TIMEOUT)
        capacity.reserve({agent.agent_id: 1}, probes={agent.agent_id}, now=later)  # the probe: half-open
        capacity.release(agent.agent_id, verdict=Verdict.SUCCESS, now=later)
    agent_services.unregister_agent(agent_id=agent.agent_id)

    events = events_of(agent.agent_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    changes = [(e.type.removeprefix(AGENT), e.payload.get("status", e.payload.get("state"))) for e in events]
    assert changes == [
        ("registered.v1", "online"),
        ("status_changed.v1", "draining"),
        ("status_changed.v1", "online"),
        ("circuit_changed.v1", "open"),
        ("circuit_changed.v1", "half_open"),
        ("circuit_changed.v1", "closed"),
        ("unregistered.v1", None),
    ]
    assert events[1].payload == {
        "agent_id": str(agent.agent_id),
        "name": "ada",
        "old_status": "online",
        "status": "draining",
        "reason": "drained by operator",
        "at": events[1].created_at,
    }
    assert events[3].payload["old_state"] == "closed" and events[3].payload["consecutive_failures"] == 1
    assert events[-1].payload["old_status"] == "online"
    assert not EntitySequence.objects.filter(aggregateid=agent.agent_id).exists()  # its counter went too


def test_an_operator_closing_circuits_publishes_only_those_that_were_not_closed(db):
    tripped, healthy = register("tripped"), register("healthy")
    capacity.release(tripped.agent_id, verdict=Verdict.FAILURE, now=timezone.now())
    tripped_before = len(events_of(tripped.agent_id))
    # One failure is below the threshold: still closed, so nothing to publish yet.
    assert [e.type for e in events_of(tripped.agent_id)] == [AGENT + "registered.v1"]
    agent_services.reset_circuit(agent_ids=[tripped.agent_id, healthy.agent_id])
    assert len(events_of(tripped.agent_id)) == tripped_before
    assert len(events_of(healthy.agent_id)) == 1


def test_with_the_sink_off_no_event_is_written(db, settings):
    settings.EVENT_SINK = "none"
    task = new_task()
    services.create_tasks_bulk(items=[valid()] * 2)
    services.cancel_task(task_id=task.task_id)
    agent = register()
    agent_services.drain(agent_id=agent.agent_id)
    capacity.release(agent.agent_id, verdict=Verdict.FAILURE, now=timezone.now())
    agent_services.unregister_agent(agent_id=agent.agent_id)
    assert not OutboxEvent.objects.exists()
    # The task still counts its events: numbers stay in step with what it went through.
    assert Task.objects.get(task_id=task.task_id).event_sequence == 2


def test_registering_an_endpoint_again_publishes_the_agents_new_settings(db):
    agent = register()

    agent_services.register_agent(
        endpoint="http://127.0.0.1:9/ada",
        type="llm",
        name="ada the second",
        capabilities=["summarise", "translate"],
        max_concurrency=9,
    )

    registered = [e for e in events_of(agent.agent_id) if e.type == AGENT + "registered.v1"]
    assert len(registered) == 2
    assert {key: registered[1].payload[key] for key in ("name", "capabilities", "max_concurrency")} == {
        "name": "ada the second",
        "capabilities": ["summarise", "translate"],
        "max_concurrency": 9,
    }
