"""The periodic sweep: what waiting could not find by itself.

Pending tasks whose retry time has come are picked up by the dispatch round that follows; here we
expire leases (a worker died mid-call, or an agent that accepted a task never reported), release
assignments an operator made and never executed, and fail tasks whose deadline passed. Each step is
one indexed query (see the partial indexes on Task), and the whole sweep runs under a Postgres advisory
lock so two beats or workers never act twice.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..models import IN_FLIGHT_STATUSES, UNFINISHED_STATUSES, EventKind, Task, TaskStatus
from .outcome import Outcome, OutcomeKind
from .outcomes import apply_outcomes, end, lock_with_agents, requeue_in_flight

SWEEP_LOCK_KEY = 0x7A5C_0001  # pg advisory lock id of the task sweep
SWEEP_BATCH = 1000


def _try_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SWEEP_LOCK_KEY])
        return cursor.fetchone()[0]


def expire_leases(now):
    """In-flight tasks past their lease are retried (or failed when out of retries)."""
    rows = list(
        Task.objects.filter(status__in=IN_FLIGHT_STATUSES, lease_expires_at__lt=now).values_list(
            "task_id", "attempts", "assigned_agent_id"
        )[:SWEEP_BATCH]
    )
    outcomes = [
        Outcome(
            task_id=task_id,
            attempt=attempt,
            agent_id=agent_id,
            kind=OutcomeKind.RETRY,
            reason="lease expired: no answer from the agent or its worker in time",
            counts_for_circuit=False,
            call_outcome="lease_expired",
        )
        for task_id, attempt, agent_id in rows
    ]
    return sum(apply_outcomes(outcomes, now=now)) if outcomes else 0


def release_forgotten_holds(now):
    """An operator's assignment of a task that is not auto-dispatched holds its agent's slot, unsent and
    without a lease, until /execute sends it. Past TASK_ASSIGNMENT_HOLD_SECONDS the task goes back to
    pending, where it waits for an operator again, and the slot is freed: a forgotten assignment must
    not take an agent's capacity for ever. Not the task's fault, so no attempt is spent. Such tasks are
    found through task_lease_expiry, whose btree keeps the NULL leases too."""
    held = Task.objects.filter(
        status=TaskStatus.ASSIGNED,
        lease_expires_at__isnull=True,
        assigned_at__lt=now - timedelta(seconds=settings.TASK_ASSIGNMENT_HOLD_SECONDS),
    )
    tasks = lock_with_agents(held, limit=SWEEP_BATCH, wait=False)
    reason = f"assigned by hand and not executed within {settings.TASK_ASSIGNMENT_HOLD_SECONDS} s"
    return len(requeue_in_flight(tasks, now=now, reason=reason)) if tasks else 0


def fail_past_deadline(now):
    # Without waiting: the leases' outcomes have locked agents already in this transaction.
    tasks = lock_with_agents(
        Task.objects.filter(status__in=UNFINISHED_STATUSES, deadline__lt=now),
        limit=SWEEP_BATCH,
        wait=False,
    )
    error = {"message": "deadline passed"}
    return len(end(EventKind.FAILED, tasks, now=now, reason="deadline passed", error=error))


def run_sweep(now=None):
    """Returns a summary, or None when another sweep holds the lock."""
    now = now or timezone.now()
    with transaction.atomic():
        if not _try_lock():
            return None
        expired = expire_leases(now)
        released = release_forgotten_holds(now)
        failed = fail_past_deadline(now)
    return {"leases_expired": expired, "holds_released": released, "deadlines_failed": failed}
