"""An operator's assignment of a task that is not auto-dispatched holds the agent's slot until /execute,
but not for ever: past TASK_ASSIGNMENT_HOLD_SECONDS the sweep gives the slot back and the task waits,
pending, for an operator again."""

from datetime import timedelta

import time_machine
from django.utils import timezone

from agents.models import Agent
from tasks.engine import sweeps
from tasks.models import Task, TaskEvent

from .test_dispatch_rules import submit

TASKS = "/api/v1/tasks"


def assign_by_hand(client, task_id, agent):
    response = client.post(f"{TASKS}/{task_id}/assign", {"agent_id": str(agent.agent_id)}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "assigned"


def load_of(agent):
    return Agent.objects.get(pk=agent.pk).current_load


def test_a_forgotten_assignment_gives_the_slot_back(operator_client, fake_agents, register, settings):
    settings.TASK_ASSIGNMENT_HOLD_SECONDS = 60
    fake = fake_agents()
    agent = register(fake, max_concurrency=1)
    task_id = submit(operator_client, auto_dispatch=False)
    assign_by_hand(operator_client, task_id, agent)
    assert load_of(agent) == 1

    with time_machine.travel(timezone.now() + timedelta(seconds=59)):
        assert sweeps.run_sweep()["holds_released"] == 0
    assert Task.objects.get(task_id=task_id).status == "assigned"

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert sweeps.run_sweep()["holds_released"] == 1

    task = Task.objects.get(task_id=task_id)
    assert (task.status, task.assigned_agent_id, task.auto_dispatch) == ("pending", None, False)
    assert load_of(agent) == 0
    event = TaskEvent.objects.filter(task_id=task_id).order_by("id").last()
    assert (event.kind, event.reason) == ("reassigned", "assigned by hand and not executed within 60 s")
    assert (task.attempts, task.retry_base) == (1, 1)  # the attempt is not counted against its retries
    assert not fake.calls  # still nothing sent: it waits for an operator, who may assign it again
    assign_by_hand(operator_client, task_id, agent)


def test_a_dispatched_task_is_not_a_hold(operator_client, fake_agents, register, settings):
    """An auto-dispatched task in flight has a lease, which its own sweep judges."""
    settings.TASK_ASSIGNMENT_HOLD_SECONDS = 1
    agent = register(fake_agents(), max_concurrency=1)
    task_id = submit(operator_client, auto_dispatch=True)
    Task.objects.filter(task_id=task_id).update(
        status="running",
        assigned_agent=agent,
        assigned_at=timezone.now() - timedelta(hours=1),
        lease_expires_at=timezone.now() + timedelta(hours=1),
    )

    assert sweeps.run_sweep()["holds_released"] == 0
    assert Task.objects.get(task_id=task_id).status == "running"
