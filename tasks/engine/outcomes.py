"""Applying what happened to an attempt: completion, acceptance (202), retry with backoff, failure; and
the other ways an attempt ends: cancelled, past its deadline, handed back.

Every change is a transition (tasks/transitions.py) fenced by the attempt number, and each frees or
keeps its agent's slot through agents.capacity in the same transaction.
"""

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from agents import capacity
from agents.capacity import Verdict
from agents.routing import Sample, route_key

from ..models import IN_FLIGHT_STATUSES, EventKind, Task
from ..transitions import Step, move, retry_timing
from . import wake
from .outcome import OutcomeKind

logger = logging.getLogger(__name__)


# An agent shedding load: routing learns these as slow outcomes (an agent that sheds load is one to send
# less to; the breaker counts a 503, as any 5xx, but not a 429). Other refusals (a 4xx) are the task's.
SLOW_REFUSALS = (429, 503)


# How an agent says it cannot take the task now, whatever the task: it sheds load or is not there. The
# task itself may be fine, so another agent may try it at once (TASK_FAILOVER_ATTEMPTS).
FAILOVER_CALL_OUTCOMES = ("connection_error",)


def fails_over(outcome, attempt_of_run):
    """Whether a retry of this failure goes at once to an agent the task has not tried (a prompt
    failover) instead of waiting its backoff: the agent refused the task (a 503 or 429, or no
    connection), on one of the first TASK_FAILOVER_ATTEMPTS attempts of its run. Later refusals back
    off as any failure does, so a fleet that refuses everything is not hammered."""
    refused = outcome.status_code in SLOW_REFUSALS or outcome.call_outcome in FAILOVER_CALL_OUTCOMES
    return refused and outcome.agent_id is not None and attempt_of_run <= settings.TASK_FAILOVER_ATTEMPTS


def backoff_delay(attempt, *, retry_after=None):
    """Exponential backoff with full jitter, never sooner than the agent's Retry-After."""
    ceiling = min(
        settings.TASK_RETRY_BACKOFF_MAX, settings.TASK_RETRY_BACKOFF_BASE * 2 ** max(attempt - 1, 0)
    )
    delay = random.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


_COMPLETE = """result = v.result, error = NULL, finished_at = %(now)s,
    started_at = COALESCE(t.started_at, %(now)s), lease_expires_at = NULL"""


def _complete_many(outcomes, now):
    """Every completion of a batch in one statement, their agents' slots and figures in one more.

    Returns the (task_id, attempt) pairs that were still in flight and so were completed.
    """
    steps = [
        Step(
            o.task_id,
            o.attempt,
            o.agent_id,
            details=o.details(),
            call_outcome=o.call_outcome,
            values=(Jsonb(o.result),),
        )
        for o in outcomes
    ]
    moved = move(EventKind.COMPLETED, steps, now=now, assignments=_COMPLETE, columns=(("result", "jsonb"),))
    latency = {(o.task_id, o.attempt): o.latency_ms for o in outcomes}
    done = {(m.task_id, m.attempt) for m in moved}
    capacity.release_successes(
        [(m.step.agent_id, latency[m.task_id, m.attempt], route_key(m.capabilities)) for m in moved], now=now
    )
    return done


_ACCEPT = """started_at = COALESCE(t.started_at, %(now)s),
    lease_expires_at = %(now)s + make_interval(secs => t.timeout_seconds)"""


def _accept(outcome, now):
    step = Step(
        outcome.task_id,
        outcome.attempt,
        outcome.agent_id,
        reason="agent accepted the task; awaiting its report",
        call_outcome="accepted",
    )
    if not move(EventKind.STARTED, [step], now=now, assignments=_ACCEPT):
        return False
    capacity.record_acceptance(outcome.agent_id, latency_ms=outcome.latency_ms, now=now)
    return True


def _locked_in_flight(task_id, attempt):
    return (
        Task.objects.select_for_update()
        .filter(task_id=task_id, attempts=attempt, status__in=IN_FLIGHT_STATUSES)
        .only(
            "task_id",
            "status",
            "attempts",
            "retry_base",
            "max_retries",
            "deadline",
            "assigned_agent_id",
            "required_capabilities",
        )
        .first()
    )


# A retry: back to the queue, due after the backoff, remembering the agent so the next attempt prefers
# another one. A prompt failover is due at once, but only for agents other than those remembered until
# failover_until (claim._plan).
_RETRY = """assigned_agent_id = NULL, lease_expires_at = NULL, next_attempt_at = v.next_attempt_at,
    failover_until = v.failover_until, error = v.error,
    avoid_agents = CASE WHEN v.agent_id IS NULL OR v.agent_id = ANY(t.avoid_agents) THEN t.avoid_agents
                        ELSE array_append(t.avoid_agents, v.agent_id) END"""


def _fail_or_retry(outcome, now):
    task = _locked_in_flight(outcome.task_id, outcome.attempt)
    if task is None:
        return False
    verdict = Verdict.FAILURE if outcome.counts_for_circuit else Verdict.BLAMELESS_FAILURE
    route = None
    if outcome.agent_id and (outcome.counts_for_circuit or outcome.status_code in SLOW_REFUSALS):
        route = Sample(outcome.agent_id, route_key(task.required_capabilities), outcome.latency_ms, ok=False)
    _wake_for_probe(capacity.release(outcome.agent_id, verdict=verdict, now=now, route=route))
    if outcome.retire_agent and outcome.agent_id:
        capacity.retire(outcome.agent_id, now=now, reason=f"retired: {outcome.reason}")
    attempt_of_run = task.attempts - task.retry_base
    budget_left = attempt_of_run <= task.max_retries
    delay = backoff_delay(task.attempts, retry_after=outcome.retry_after)
    back_at = now + timedelta(seconds=delay)  # when the agent that failed may have the task again
    failover = fails_over(outcome, attempt_of_run)
    next_attempt_at = now if failover else back_at
    past_deadline = task.deadline is not None and next_attempt_at >= task.deadline
    if outcome.kind is OutcomeKind.RETRY and budget_left and not past_deadline:
        # A failover's event also says how long the agents it tried are off limits to it.
        timing = retry_timing(delay, failover=failover)
        step = Step(
            task.task_id,
            task.attempts,
            outcome.agent_id,
            reason=outcome.reason,
            details={**(outcome.details() or {}), **timing},
            call_outcome=outcome.call_outcome,
            values=(next_attempt_at, back_at if failover else None, Jsonb(outcome.error_value())),
        )
        columns = (("next_attempt_at", "timestamptz"), ("failover_until", "timestamptz"), ("error", "jsonb"))
        move(EventKind.RETRYING, [step], now=now, assignments=_RETRY, columns=columns)
        wake.ring_at(next_attempt_at)
        if failover:
            wake.ring_at(back_at)  # should only the agents it tried be free by then
        return True
    reason = outcome.reason
    if outcome.kind is OutcomeKind.RETRY:
        reason += (
            " (deadline would pass before the next attempt)" if past_deadline else " (retries exhausted)"
        )
    end(
        EventKind.FAILED,
        [task],
        now=now,
        reason=reason,
        error=outcome.error_value(),
        agent_id=outcome.agent_id,
        details=outcome.details(),
        call_outcome=outcome.call_outcome,
        release=False,  # released above, with the failure's verdict
    )
    return True


def _wake_for_probe(released):
    """A tripped breaker lets its probe through at circuit_retry_at; waiting work must wake then."""
    if released is not None and released.circuit_retry_at is not None:
        wake.ring_at(released.circuit_retry_at)


# What ending or requeueing a task reads of it.
ENDING_FIELDS = ("task_id", "status", "attempts", "assigned_agent_id")


def lock_with_agents(tasks, *, fields=ENDING_FIELDS, limit=None, wait=True):
    """Lock the tasks of `tasks` (a queryset) to end or requeue them, their agents first: the order a
    batch of outcomes locks in (agents.capacity.lock), so the two wait for each other instead of
    deadlocking. Returns the locked tasks with `fields` loaded.

    With `wait=False` nothing is waited for, for a transaction that already holds agents (the sweep's):
    tasks whose agent's row or own row another transaction holds are left out, for next time. So is a
    task that moved to another agent between the read of its agent and the locks."""
    agent_ids = set(tasks.values_list("assigned_agent_id", flat=True)[:limit]) - {None}
    if wait:
        capacity.lock(agent_ids)
        mine = {str(agent_id) for agent_id in agent_ids}
    else:
        mine = capacity.lock_unheld(agent_ids)
    locked = tasks.select_for_update(skip_locked=not wait).only(*fields)[:limit]
    return [t for t in locked if t.assigned_agent_id is None or str(t.assigned_agent_id) in mine]


_END = """finished_at = %(now)s, lease_expires_at = NULL, next_attempt_at = NULL, failover_until = NULL,
    error = COALESCE(v.error, t.error)"""


def end(kind, tasks, *, now, reason, error=None, agent_id=None, details=None, call_outcome="", release=True):
    """End locked tasks for good (FAILED or CANCELLED), freeing the slots of those in flight unless
    the caller released them already. `agent_id` names the agent in the event (default: the task's)."""
    steps = [
        Step(
            task.task_id,
            task.attempts,
            agent_id or task.assigned_agent_id,
            reason=reason,
            details=details,
            call_outcome=call_outcome,
            values=(None if error is None else Jsonb(error),),
        )
        for task in tasks
    ]
    holding = [t for t in tasks if t.status in IN_FLIGHT_STATUSES and t.assigned_agent_id] if release else []
    for task in holding:
        capacity.release(task.assigned_agent_id, verdict=Verdict.NEUTRAL, now=now)
    if holding:
        wake.ring()  # their slots are free for others
    return move(kind, steps, now=now, assignments=_END, columns=(("error", "jsonb"),))


# A hand-back: the task goes back to the queue at once. `forgiven` is 1 unless the task is to be
# charged for the attempt: the agent or worker went away, the task did nothing wrong.
_REQUEUE = """assigned_agent_id = NULL, lease_expires_at = NULL, next_attempt_at = %(now)s,
    retry_base = t.retry_base + v.forgiven"""


def requeue_in_flight(tasks, *, now, reason, penalise=False):
    """Hand locked in-flight tasks back to the queue at once and wake dispatch for them."""
    for task in tasks:
        capacity.release(task.assigned_agent_id, verdict=Verdict.NEUTRAL, now=now)
    steps = [
        Step(
            task.task_id, task.attempts, task.assigned_agent_id, reason=reason, values=(0 if penalise else 1,)
        )
        for task in tasks
    ]
    moved = move(EventKind.REASSIGNED, steps, now=now, assignments=_REQUEUE, columns=(("forgiven", "int"),))
    if moved:
        wake.ring()
    return moved


def apply_outcomes(outcomes, *, now=None, before=None, after=None, ring=True):
    """Apply a batch in one transaction; if anything in it fails, fall back to one by one.

    `before(now)`, when given, runs first in the same transaction (the writer's "sent" marks of the
    same batch: one commit instead of two). On the fallback path it runs in a transaction of its own,
    and a failure there is logged: a lost mark is superseded by the outcome that follows it.
    `after(now)`, when given, runs last in the same transaction, on the batch path only (the writer's
    dispatch round, which gives the freed slots out in the same commit).
    `ring`: wake dispatch for the slots freed (the writer dispatches itself instead).
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            capacity.lock(o.agent_id for o in outcomes)
            if before is not None:
                before(now)
            completed = _complete_many([o for o in outcomes if o.kind is OutcomeKind.COMPLETED], now)
            applied = [
                (o.task_id, o.attempt) in completed
                if o.kind is OutcomeKind.COMPLETED
                else _APPLIERS[o.kind](o, now)
                for o in outcomes
            ]
            if ring and any(applied):
                wake.ring()
            if after is not None:
                after(now)
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
                before(now)
        except Exception:
            logger.exception("could not record the batch's sent marks; its outcomes supersede them")
    results = []
    for outcome in outcomes:
        try:
            results.extend(apply_outcomes([outcome], now=now, ring=ring))
        except Exception:
            logger.exception(
                "could not apply outcome for task %s attempt %s", outcome.task_id, outcome.attempt
            )
            results.append(False)
    return results


_APPLIERS = {
    OutcomeKind.ACCEPTED: _accept,
    OutcomeKind.RETRY: _fail_or_retry,
    OutcomeKind.FAIL: _fail_or_retry,
}
