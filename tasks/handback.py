"""Handing work back when an agent or a worker goes away."""

from django.db import transaction
from django.utils import timezone

from .models import IN_FLIGHT_STATUSES, Task
from .outcomes import requeue_in_flight
from .transitions import TransitionLog
from .wake import wake_dispatch

_FIELDS = (
    "task_id",
    "attempts",
    "retry_base",
    "priority",
    "type",
    "required_capabilities",
    "assigned_agent_id",
)


def _requeue(tasks, reason):
    log = TransitionLog()
    requeue_in_flight(tasks, now=timezone.now(), reason=reason, log=log)
    log.flush()
    if tasks:
        transaction.on_commit(wake_dispatch)
    return len(tasks)


def hand_back_agent_tasks(*, agent_ids, reason):
    """Re-queue every in-flight task of `agent_ids`. Call inside the transaction that retires the agents.

    Returns how many tasks were handed back. A late answer from the old agent is fenced off by the
    attempt number, and the task's retry budget is not charged for the agent's disappearance.
    """
    if not agent_ids:
        return 0
    tasks = Task.objects.select_for_update().filter(
        assigned_agent_id__in=list(agent_ids), status__in=IN_FLIGHT_STATUSES
    )
    return _requeue(list(tasks.only(*_FIELDS)), reason)


def hand_back_attempts(keys, *, reason):
    """Re-queue specific (task_id, attempt) pairs still in flight, e.g. when a worker shuts down."""
    wanted = {(str(task_id), attempt) for task_id, attempt in keys}
    if not wanted:
        return 0
    with transaction.atomic():
        tasks = Task.objects.select_for_update().filter(
            task_id__in=[task_id for task_id, _ in wanted], status__in=IN_FLIGHT_STATUSES
        )
        return _requeue([t for t in tasks.only(*_FIELDS) if (str(t.task_id), t.attempts) in wanted], reason)
