"""Handing work back when an agent or a worker goes away.

The agents app announces lost agents (agents.signals.work_lost) inside the transaction that takes them
offline or deletes them; `on_work_lost` is connected to it in TasksConfig.ready(), so the hand-back
commits or rolls back with the agent's change. A late answer from the old agent is fenced off by the
attempt number, and the task's retry budget is not charged for the agent's disappearance.
"""

from django.db import transaction
from django.utils import timezone

from ..models import IN_FLIGHT_STATUSES, Task
from .outcomes import ENDING_FIELDS, lock_with_agents, requeue_in_flight


def hand_back_agent_tasks(*, agent_ids, reason):
    """Re-queue every in-flight task of `agent_ids`, in the caller's transaction. Returns how many."""
    if not agent_ids:
        return 0
    tasks = Task.objects.select_for_update().filter(
        assigned_agent_id__in=list(agent_ids), status__in=IN_FLIGHT_STATUSES
    )
    return len(requeue_in_flight(list(tasks.only(*ENDING_FIELDS)), now=timezone.now(), reason=reason))


def on_work_lost(agent_ids, reason, **_):
    hand_back_agent_tasks(agent_ids=agent_ids, reason=reason)


def hand_back_attempts(keys, *, reason):
    """Re-queue specific (task_id, attempt) pairs still in flight, e.g. when a worker shuts down."""
    wanted = {(str(task_id), attempt) for task_id, attempt in keys}
    if not wanted:
        return 0
    with transaction.atomic():
        ids = [task_id for task_id, _ in wanted]
        tasks = lock_with_agents(Task.objects.filter(task_id__in=ids, status__in=IN_FLIGHT_STATUSES))
        mine = [t for t in tasks if (str(t.task_id), t.attempts) in wanted]
        return len(requeue_in_flight(mine, now=timezone.now(), reason=reason))
