"""Applying what happened to an attempt: completion, acceptance (202), retry with backoff, failure.

Every change is a guarded update on (task_id, attempts, status in flight): `attempts` is the fencing
token, so the answer of a superseded attempt (a stalled worker waking up, a slow agent answering after
its lease expired) matches no row and changes nothing.
"""

import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from orchestrator_project.prepared import prepared_cursor

from . import agent_stats
from .models import IN_FLIGHT_STATUSES, EventKind, Task, TaskStatus
from .transitions import TransitionLog
from .wake import wake_dispatch_later

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one attempt came to. `kind`: completed, accepted, retry (retryable failure) or fail."""

    task_id: UUID
    attempt: int
    agent_id: UUID | None
    kind: str
    result: Any = None
    error: Any = None
    reason: str = ""
    status_code: int | None = None
    retry_after: float | None = None
    latency_ms: float | None = None
    # Whether this failure says something about the agent's health (timeouts and 5xx do; 429 does not).
    counts_for_circuit: bool = True
    retire_agent: bool = False
    call_outcome: str = ""
    extra: dict = field(default_factory=dict)


def backoff_delay(attempt, *, retry_after=None):
    """Exponential backoff with full jitter, never sooner than the agent's Retry-After."""
    ceiling = min(
        settings.TASK_RETRY_BACKOFF_MAX, settings.TASK_RETRY_BACKOFF_BASE * 2 ** max(attempt - 1, 0)
    )
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _complete_many(outcomes, now, log):
    """Every completion of a batch in one UPDATE, their agents' slots and figures in one more.

    Returns the (task_id, attempt) pairs that were still in flight and so were completed.
    """
    if not outcomes:
        return set()
    with prepared_cursor() as cursor:
        cursor.execute(
            """UPDATE tasks_task AS t SET status = 'completed', result = v.result, error = NULL,
                   finished_at = %s, started_at = COALESCE(t.started_at, %s), lease_expires_at = NULL,
                   updated_at = %s
               FROM unnest(%s::uuid[], %s::int[], %s::jsonb[]) AS v(task_id, attempt, result)
               WHERE t.task_id = v.task_id AND t.attempts = v.attempt AND t.status IN ('assigned', 'running')
               RETURNING t.task_id, t.attempts, t.priority, t.type, t.required_capabilities, t.created_at""",
            [
                now,
                now,
                now,
                [o.task_id for o in outcomes],
                [o.attempt for o in outcomes],
                [Jsonb(o.result) for o in outcomes],
            ],
        )
        rows = {(row[0], row[1]): row[2:] for row in cursor.fetchall()}
    done = [o for o in outcomes if (o.task_id, o.attempt) in rows]
    agent_stats.release_successes(done, now=now)
    for outcome in done:
        priority, task_type, capabilities, created_at = rows[(outcome.task_id, outcome.attempt)]
        log.add(
            task_id=outcome.task_id,
            kind=EventKind.COMPLETED,
            status=TaskStatus.COMPLETED,
            attempt=outcome.attempt,
            agent_id=outcome.agent_id,
            at=now,
            priority=priority,
            task_type=task_type,
            capabilities=capabilities,
            details=_call_details(outcome),
            duration_seconds=(now - created_at).total_seconds(),
            agent_call_outcome=outcome.call_outcome or None,
        )
    return set(rows)


def _accept(outcome, now, log):
    with prepared_cursor() as cursor:
        cursor.execute(
            """UPDATE tasks_task SET status = 'running', started_at = COALESCE(started_at, %s),
                   lease_expires_at = %s + make_interval(secs => timeout_seconds), updated_at = %s
               WHERE task_id = %s AND attempts = %s AND status IN ('assigned', 'running')
               RETURNING priority, type, required_capabilities""",
            [now, now, now, outcome.task_id, outcome.attempt],
        )
        row = cursor.fetchone()
    if row is None:
        return False
    agent_stats.note_accepted(outcome.agent_id, now=now, latency_ms=outcome.latency_ms)
    log.add(
        task_id=outcome.task_id,
        kind=EventKind.STARTED,
        status=TaskStatus.RUNNING,
        attempt=outcome.attempt,
        agent_id=outcome.agent_id,
        at=now,
        reason="agent accepted the task; awaiting its report",
        priority=row[0],
        task_type=row[1],
        capabilities=row[2],
        agent_call_outcome="accepted",
    )
    return True


def _call_details(outcome):
    details = {
        key: value
        for key, value in (("status_code", outcome.status_code), ("latency_ms", outcome.latency_ms))
        if value is not None
    }
    return details or None


def _locked_in_flight(task_id, attempt):
    return (
        Task.objects.select_for_update()
        .filter(task_id=task_id, attempts=attempt, status__in=IN_FLIGHT_STATUSES)
        .only(
            "task_id",
            "attempts",
            "retry_base",
            "max_retries",
            "deadline",
            "priority",
            "type",
            "required_capabilities",
            "assigned_agent_id",
            "avoid_agents",
            "created_at",
        )
        .first()
    )


def _fail_or_retry(outcome, now, log):
    task = _locked_in_flight(outcome.task_id, outcome.attempt)
    if task is None:
        return False
    agent_stats.release(
        outcome.agent_id, now=now, outcome="failure", counts_for_circuit=outcome.counts_for_circuit
    )
    if outcome.retire_agent and outcome.agent_id:
        agent_stats.retire(outcome.agent_id, now=now, reason=f"retired: {outcome.reason}")
    budget_left = task.attempts - task.retry_base <= task.max_retries
    delay = backoff_delay(task.attempts, retry_after=outcome.retry_after)
    next_attempt_at = now + timedelta(seconds=delay)
    past_deadline = task.deadline is not None and next_attempt_at >= task.deadline
    if outcome.kind == "retry" and budget_left and not past_deadline:
        avoid = (
            list(dict.fromkeys([*task.avoid_agents, outcome.agent_id]))
            if outcome.agent_id
            else task.avoid_agents
        )
        Task.objects.filter(pk=task.pk).update(
            status=TaskStatus.PENDING,
            assigned_agent=None,
            lease_expires_at=None,
            next_attempt_at=next_attempt_at,
            error=_error_value(outcome),
            avoid_agents=avoid,
            updated_at=now,
        )
        log.record(
            task,
            kind=EventKind.RETRYING,
            status=TaskStatus.PENDING,
            at=now,
            agent_id=outcome.agent_id,
            reason=outcome.reason,
            details={**(_call_details(outcome) or {}), "retry_in_seconds": round(delay, 3)},
            agent_call_outcome=outcome.call_outcome or None,
        )
        transaction.on_commit(lambda: wake_dispatch_later(delay))
        return True
    if outcome.kind == "retry":
        why = "deadline would pass before the next attempt" if past_deadline else "retries exhausted"
        reason = f"{outcome.reason} ({why})"
    else:
        reason = outcome.reason
    finish(
        task,
        now,
        log,
        status=TaskStatus.FAILED,
        release_agent=False,  # released above, as a failure
        reason=reason,
        error=_error_value(outcome),
        agent_id=outcome.agent_id,
        details=_call_details(outcome),
        call_outcome=outcome.call_outcome,
    )
    return True


def _error_value(outcome):
    if outcome.error is not None:
        return outcome.error
    return {
        "message": outcome.reason,
        **({"status_code": outcome.status_code} if outcome.status_code else {}),
    }


def finish(
    task,
    now,
    log,
    *,
    status,
    reason,
    error=None,
    agent_id=None,
    details=None,
    call_outcome="",
    release_agent=True,
):
    """End a locked task for good (failed or cancelled), freeing its agent slot if it held one."""
    if release_agent and task.status in IN_FLIGHT_STATUSES and task.assigned_agent_id:
        agent_stats.release(task.assigned_agent_id, now=now, outcome="neutral")
    fields = {
        "status": status,
        "finished_at": now,
        "lease_expires_at": None,
        "next_attempt_at": None,
        "updated_at": now,
    }
    if error is not None:
        fields["error"] = error
    Task.objects.filter(pk=task.pk).update(**fields)
    log.record(
        task,
        kind=status,
        status=status,
        at=now,
        agent_id=agent_id,
        reason=reason,
        details=details,
        duration_seconds=(now - task.created_at).total_seconds(),
        agent_call_outcome=call_outcome or None,
    )
    if status == TaskStatus.FAILED:
        _notify_failure(task, reason, error)


def _notify_failure(task, reason, error):
    try:
        from agents.notifier import notify
    except ImportError:  # the notifier ships with the agents app
        return
    notify(
        "task.failed",
        {
            "task_id": str(task.pk),
            "type": task.type,
            "attempts": task.attempts,
            "reason": reason,
            "error": error,
        },
    )


_APPLIERS = {"accepted": _accept, "retry": _fail_or_retry, "fail": _fail_or_retry}


def _lock_agents(outcomes):
    """Lock the batch's agents before any of its tasks, in id order, as a dispatch round takes slots.

    A worker's batch and a lease sweep can hold outcomes for the same task (a late answer, an expired
    lease); taking task rows before agent rows, each in its own order, deadlocked them under load (see
    tests/chaos). With the agents first, one waits for the other and then finds the task already moved.
    """
    agent_ids = sorted({str(o.agent_id) for o in outcomes if o.agent_id})
    if agent_ids:
        with prepared_cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM agents_agent WHERE agent_id = ANY(%s::uuid[]) ORDER BY agent_id FOR UPDATE",
                [agent_ids],
            )


def apply_outcomes(outcomes, *, now=None, before=None):
    """Apply a batch in one transaction; if anything in it fails, fall back to one by one.

    `before(now, log)`, when given, runs first in the same transaction (the runner's "sent" marks of
    the same batch: one commit instead of two). On the fallback path it runs in a transaction of its
    own, and a failure there is logged: a lost mark is superseded by the outcome that follows it.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            _lock_agents(outcomes)
            log = TransitionLog()
            if before is not None:
                before(now, log)
            completed = _complete_many([o for o in outcomes if o.kind == "completed"], now, log)
            applied = [
                (o.task_id, o.attempt) in completed
                if o.kind == "completed"
                else _APPLIERS[o.kind](o, now, log)
                for o in outcomes
            ]
            log.flush()
        return applied
    except (OperationalError, InterfaceError):
        # The database is unavailable: one by one would fail the same way. The caller (the runner's
        # writer) keeps the batch and tries again.
        raise
    except Exception:
        # Inside a caller's transaction (the sweep's), rolling back our savepoint releases none of the
        # locks taken so far: one-by-one retries would wait on the very transactions that wait on us and
        # deadlock again at every outcome, a second each. Let the caller's transaction fail instead.
        if connection.in_atomic_block or (len(outcomes) == 1 and before is None):
            raise
        logger.exception("applying a batch of %d outcomes failed; retrying one by one", len(outcomes))
    if before is not None:
        try:
            with transaction.atomic():
                log = TransitionLog()
                before(now, log)
                log.flush()
        except Exception:
            logger.exception("could not record the batch's sent marks; its outcomes supersede them")
    results = []
    for outcome in outcomes:
        try:
            results.extend(apply_outcomes([outcome], now=now))
        except Exception:
            logger.exception(
                "could not apply outcome for task %s attempt %s", outcome.task_id, outcome.attempt
            )
            results.append(False)
    return results


def requeue_in_flight(tasks, *, now, reason, log, kind=EventKind.REASSIGNED, penalise=False):
    """Hand in-flight tasks back to the queue at once. Unless `penalise`, the attempt is not counted
    against the retry budget (the agent or worker went away; the task did nothing wrong)."""
    for task in tasks:
        agent_stats.release(task.assigned_agent_id, now=now, outcome="neutral")
        Task.objects.filter(pk=task.pk).update(
            status=TaskStatus.PENDING,
            assigned_agent=None,
            lease_expires_at=None,
            next_attempt_at=now,
            retry_base=task.retry_base + (0 if penalise else 1),
            updated_at=now,
        )
        log.record(
            task, kind=kind, status=TaskStatus.PENDING, at=now, agent_id=task.assigned_agent_id, reason=reason
        )
