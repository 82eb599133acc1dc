"""Handing work back when an agent goes away (heartbeat expired, unregistered)."""

from django.db import transaction
from django.utils import timezone

from .models import IN_FLIGHT_STATUSES, Task
from .outcomes import requeue_in_flight
from .transitions import TransitionLog
from .wake import wake_dispatch


def hand_back_agent_tasks(*, agent_ids, reason):
    """Re-queue every in-flight task of `agent_ids`. Call inside the transaction that retires the agents.

    Returns how many tasks were handed back. A late answer from the old agent is fenced off by the
    attempt number, and the task's retry budget is not charged for the agent's disappearance.
    """
    if not agent_ids:
        return 0
    now = timezone.now()
    tasks = list(Task.objects.select_for_update()
                 .filter(assigned_agent_id__in=list(agent_ids), status__in=IN_FLIGHT_STATUSES)
                 .only("task_id", "attempts", "retry_base", "priority", "type", "required_capabilities",
                       "assigned_agent_id"))
    log = TransitionLog()
    requeue_in_flight(tasks, now=now, reason=reason, log=log)
    log.flush()
    if tasks:
        transaction.on_commit(wake_dispatch)
    return len(tasks)


def hand_back_attempts(keys, *, reason):
    """Re-queue specific (task_id, attempt) pairs still in flight, e.g. when a worker shuts down."""
    if not keys:
        return 0
    now = timezone.now()
    wanted = {(task_id, attempt) for task_id, attempt in keys}
    with transaction.atomic():
        tasks = [task for task in Task.objects.select_for_update()
                 .filter(task_id__in=[task_id for task_id, _ in wanted], status__in=IN_FLIGHT_STATUSES)
                 .only("task_id", "attempts", "retry_base", "priority", "type", "required_capabilities",
                       "assigned_agent_id")
                 if (task.task_id, task.attempts) in wanted]
        log = TransitionLog()
        requeue_in_flight(tasks, now=now, reason=reason, log=log)
        log.flush()
        if tasks:
            transaction.on_commit(wake_dispatch)
    return len(tasks)
