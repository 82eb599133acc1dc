"""Task workflows called by the API: create, cancel, retry, assign, report, execute.

Each change of status is a guarded transition (transitions.py): the UPDATE names the statuses it
expects and the row count says whether it happened, so concurrent requests and workers can never both
win. Failures are domain errors (orchestrator_project.errors): NotFound, Conflict, InvalidInput.
"""

import hashlib
import json
from contextlib import nullcontext
from functools import cache

import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agents import eligibility
from agents.models import Agent
from orchestrator_project import ids
from orchestrator_project.errors import Conflict, InvalidInput, NotFound
from orchestrator_project.outbox import writer
from orchestrator_project.pg_arrays import array_literal
from orchestrator_project.prepared import insert_value_reader, prepared_cursor

from . import outbox
from .engine import claim, wake
from .engine.outcome import Outcome, OutcomeKind
from .engine.outcomes import ENDING_FIELDS, apply_outcomes, end, lock_with_agents
from .jobs import send_assigned, tell_agent_cancelled
from .models import (
    CANCELLABLE_STATUSES,
    IN_FLIGHT_STATUSES,
    RETRYABLE_BY_OPERATOR,
    EventKind,
    Task,
    TaskStatus,
)
from .transitions import Step, announce_created, created_event_sql, move


class IdempotencyConflict(Conflict):
    default_message = "This Idempotency-Key was already used with a different request body."


def _fingerprint(data):
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _new_task(data, *, user, now):
    # A caller may have chosen the id (a workflow's map item is written with its task's id already).
    return Task(
        **({"task_id": ids.uuid4()} | data),
        created_by=user if user and user.pk else None,
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
        status=TaskStatus.PENDING,
    )


# What the creating INSERT returns: for the event row, the outbox event and the ring.
_CREATED_COLUMNS = (
    "task_id, type, priority, required_capabilities, status, event_sequence, created_at, auto_dispatch"
)


@cache
def _columns():
    """The task table's columns, quoted and in field order: what the INSERT and the COPY write."""
    return ", ".join(connection.ops.quote_name(field.column) for field in Task._meta.concrete_fields)


@cache
def _insert_statement(publish, rows=1):
    """The INSERT of `rows` tasks, and how each column's value is read off a Task
    (prepared.insert_value_reader).

    The same statement writes the creation's event row and its outbox event (outbox.py), and rings
    dispatch for an auto-dispatched task: a NOTIFY that Postgres delivers on commit (engine/wake.py). No
    extra round trip for any of them.
    """
    fields = Task._meta.concrete_fields
    numbers = iter(range(1, len(fields) * rows + 1))  # $1, $2, ...: prepared_cursor(numbered=True)
    placeholders = ", ".join(f"({', '.join(f'${next(numbers)}' for _ in fields)})" for _ in range(rows))
    readers = [insert_value_reader(field) for field in fields]
    published = f", published AS ({outbox.created_sql('created')})" if publish else ""
    return readers, (
        f"WITH created AS (INSERT INTO {Task._meta.db_table} ({_columns()}) VALUES {placeholders}"
        f" RETURNING {_CREATED_COLUMNS}), logged AS ({created_event_sql('created')}){published}"
        f" {wake.RING_NEW_WORK_SQL} FROM created WHERE auto_dispatch"
    )


def _insert(tasks):
    """INSERT tasks as Model.save(force_insert=True) would, in one prepared statement (one per number
    of tasks) that also writes their events and rings dispatch."""
    readers, sql = _insert_statement(writer.enabled(), len(tasks))
    with prepared_cursor(numbered=True) as cursor:
        cursor.execute(sql, [read(task) for task in tasks for read in readers])
    for task in tasks:
        task._state.adding = False


def _copy_in(tasks):
    """Write many tasks with one COPY, the values read as `_insert` reads them.

    bulk_create's single INSERT of 1,000 tasks carries 28,000 placeholders: building that text, and
    psycopg splitting it again, cost about 0.3 ms per task, most of a bulk request.
    """
    readers, _ = _insert_statement(False)
    copy_sql = f"COPY {Task._meta.db_table} ({_columns()}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
        for task in tasks:
            copy.write_row([read(task) for read in readers])
    for task in tasks:
        task._state.adding = False


def create_task(*, data, user=None, idempotency_key=None):
    """Returns (task, created). A repeated Idempotency-Key returns the first task instead of a second."""
    fingerprint = _fingerprint(data) if idempotency_key else ""
    if idempotency_key:
        existing = Task.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint), False
    now = timezone.now()
    task = _new_task(data, user=user, now=now)
    task.idempotency_key = idempotency_key
    task.request_fingerprint = fingerprint
    try:
        # One statement: in autocommit (the API) it commits by itself, without BEGIN/COMMIT round
        # trips; inside a caller's transaction a savepoint keeps a duplicate key from aborting it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            _insert([task])
    except IntegrityError:
        # Two requests with the same key raced; the other one won.
        existing = Task.objects.filter(idempotency_key=idempotency_key).first()
        if idempotency_key and existing is not None:
            return _replay(existing, fingerprint), False
        raise
    announce_created([task])
    return task, True


def _replay(existing, fingerprint):
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyConflict()
    return existing


# Past this many tasks a creation goes by COPY: one INSERT's parameters grow with the tasks (28 each),
# and Postgres would keep a prepared statement for every number of them.
INSERT_MAX_ROWS = 16
_BULK_EVENTS_SQL = created_event_sql("unnest(%s::uuid[], %s::timestamptz[]) AS created(task_id, created_at)")
# The COPY cannot return rows, so the bulk's outbox events read the tasks it just wrote, by primary key.
_BULK_PUBLISHED_SQL = f"WITH logged AS ({_BULK_EVENTS_SQL}) " + outbox.created_sql(
    f"{Task._meta.db_table} WHERE task_id = ANY(%s::uuid[])"
)


def create_tasks_bulk_once(*, items, user=None, idempotency_key):
    """create_tasks_bulk behind an Idempotency-Key. Returns (tasks, created): a repeat of the request
    returns the tasks the first one made; the key with another body raises IdempotencyConflict.

    Each task keeps the key with its place in the request ("key#0", "key#1", ...: the column is unique)
    and the whole request's fingerprint, so a replay is one indexed read, and two requests racing with
    one key cannot both write: the loser's transaction fails on the first key and it replays the winner.
    """
    fingerprint = _fingerprint(items)
    keys = [bulk_key(idempotency_key, index) for index in range(len(items))]
    existing = _bulk_replay(keys, fingerprint)
    if existing is not None:
        return existing, False
    try:
        # Its own transaction, or a savepoint inside a caller's, so that a lost race can read after.
        with transaction.atomic():
            return create_tasks_bulk(items=items, user=user, keys=keys, fingerprint=fingerprint), True
    except (IntegrityError, psycopg.errors.UniqueViolation):
        # Another request made them meanwhile, or the first task an earlier one made was deleted since
        # (an operator may delete finished tasks): look at every key.
        existing = _bulk_replay(keys, fingerprint, any_key=True)
        if existing is None:
            raise
        return existing, False


def bulk_key(idempotency_key, index):
    return f"{idempotency_key}#{index}"


def bulk_place(task):
    """A task's place in the keyed bulk request that made it (the index in its key)."""
    return int(task.idempotency_key.rpartition("#")[2])


def _bulk_replay(keys, fingerprint, *, any_key=False):
    made = Task.objects.filter(idempotency_key__in=keys)
    looked_at = made if any_key else Task.objects.filter(idempotency_key=keys[0])
    first = looked_at.only("request_fingerprint").first()
    if first is None:
        return None
    if first.request_fingerprint != fingerprint:
        raise IdempotencyConflict()
    # The same body, so the same number of tasks; in the request's order (a finished one an operator
    # deleted since is left out).
    place = {key: index for index, key in enumerate(keys)}
    return sorted(made, key=lambda task: place[task.idempotency_key])


def create_tasks_bulk(*, items, user=None, keys=None, fingerprint=""):
    """All or nothing. Up to INSERT_MAX_ROWS tasks (a workflow's next steps, mostly) are one INSERT that
    writes their events and rings too: one round trip. More are one COPY (two round trips, whatever
    the number), one INSERT of their events and one ring. `keys`: an idempotency key per task
    (create_tasks_bulk_once)."""
    now = timezone.now()
    tasks = [_new_task(data, user=user, now=now) for data in items]
    if keys is not None:
        for task, key in zip(tasks, keys, strict=True):
            task.idempotency_key, task.request_fingerprint = key, fingerprint
    # Inside a caller's transaction (a workflow's advance) that transaction is the all or nothing: a
    # savepoint of our own would cost two round trips on every step's hand-over and undo nothing more.
    if 0 < len(tasks) <= INSERT_MAX_ROWS:
        with transaction.atomic(savepoint=False):
            _insert(tasks)
            announce_created(tasks)
        return tasks
    with transaction.atomic(savepoint=False):
        _copy_in(tasks)
        task_ids = array_literal([t.task_id for t in tasks])
        created = array_literal([t.created_at for t in tasks])
        with prepared_cursor() as cursor:
            if writer.enabled():
                cursor.execute(_BULK_PUBLISHED_SQL, [task_ids, created, task_ids])
            else:
                cursor.execute(_BULK_EVENTS_SQL, [task_ids, created])
        if any(task.auto_dispatch for task in tasks):
            wake.ring_new_work()
        announce_created(tasks)
    return tasks


def _get_for_update(task_id):
    task = Task.objects.select_for_update().filter(task_id=task_id).first()
    if task is None:
        raise NotFound("No task with this id.")
    return task


# How often a cancel starts over when its task moved to another agent between the read and the locks.
_CANCEL_TRIES = 5


def cancel_task(*, task_id, reason="cancelled by an operator"):
    """Cancel a pending or in-flight task, freeing its agent's slot. An agent that may be working on it
    is told, after the commit (AGENT_CANCEL_NOTICES; engine/cancel_notice.py).

    Locks the task's agent before the task, as a batch of outcomes does (agents.capacity.lock): the
    other order deadlocked with a worker applying the same task's answer, each waiting on the row the
    other held. The agent is read before the locks; should the task have moved to another agent since
    (a retry, a hand-back), the transaction starts over rather than lock a second agent out of order."""
    for _ in range(_CANCEL_TRIES):
        with transaction.atomic():
            found = Task.objects.filter(task_id=task_id)
            locked = lock_with_agents(found, fields=(*ENDING_FIELDS, "lease_expires_at"))
            if not locked:
                if not found.exists():
                    raise NotFound("No task with this id.")
                continue
            [task] = locked
            if task.status not in CANCELLABLE_STATUSES:
                raise Conflict(
                    f"Task is already {task.status}; only pending, assigned or running tasks can be"
                    " cancelled."
                )
            tell_agent = settings.AGENT_CANCEL_NOTICES and _with_its_agent(task)
            end(EventKind.CANCELLED, [task], now=timezone.now(), reason=reason)
            if tell_agent:
                args = (str(task.task_id), task.attempts, str(task.assigned_agent_id), reason)
                transaction.on_commit(lambda args=args: tell_agent_cancelled.delay(*args))
            break
    else:
        raise Conflict("The task kept moving between agents while being cancelled; try again.")
    task.refresh_from_db()
    return task


def _with_its_agent(task):
    """Whether the agent may be working on the task: running (it accepted it), or assigned with a lease
    (its call is on the way or in flight). A hand assignment not yet sent is the agent's news to nobody."""
    if task.assigned_agent_id is None:
        return False
    return task.status == TaskStatus.RUNNING or (
        task.status == TaskStatus.ASSIGNED and task.lease_expires_at is not None
    )


# An operator's retry: back to the queue at once, with a fresh budget, result and agents forgotten.
_REQUEUE = """assigned_agent_id = NULL, result = NULL, error = NULL, finished_at = NULL,
    next_attempt_at = %(now)s, lease_expires_at = NULL, retry_base = t.attempts, avoid_agents = '{}',
    failover_until = NULL"""


def retry_task(*, task_id):
    """An operator runs a failed or cancelled task again, with a fresh retry budget."""
    with transaction.atomic():
        task = _get_for_update(task_id)
        if task.workflow_step_id is not None:
            # Its step decides what its outcome means, and a failed step has already failed its run: a
            # task run again here would do the agent's work for nothing. The run's step retry makes a new
            # attempt of the step, with a task of its own.
            raise Conflict(
                "This task is a workflow step's; retry the step instead: "
                "POST /api/v1/workflow-runs/{run_id}/steps/{step_id}/retry."
            )
        if task.status not in RETRYABLE_BY_OPERATOR:
            raise Conflict(f"Task is {task.status}; only failed or cancelled tasks can be retried.")
        step = Step(task.task_id, task.attempts, reason="retried by an operator")
        move(EventKind.REQUEUED, [step], now=timezone.now(), assignments=_REQUEUE)
        if task.auto_dispatch:
            wake.ring()
    task.refresh_from_db()
    return task


def assign_task(*, task_id, agent_id=None):
    """Assign now, to the given agent or the best one. Raises Conflict with the reason when it cannot."""
    task = Task.objects.filter(task_id=task_id).first()
    if task is None:
        raise NotFound("No task with this id.")
    if task.status != TaskStatus.PENDING:
        raise Conflict(f"Task is {task.status}; only pending tasks can be assigned.")
    if agent_id is not None:
        agent = Agent.objects.filter(agent_id=agent_id).first()
        if agent is None:
            raise InvalidInput({"agent_id": ["No agent with this id."]})
        try:
            assignment = claim.assign_to(task_id, agent)
        except claim.NoAgentAvailable as exc:
            raise Conflict(str(exc))
    else:
        assignments = claim.claim(task_ids=[task_id])
        assignment = assignments[0] if assignments else None
        if assignment is None:
            raise Conflict(
                "No capable agent is available now (online, not draining, circuit closed, with a free "
                f"slot) for capabilities: {', '.join(task.required_capabilities)}."
            )
    if assignment is None:
        raise Conflict("Task changed state while being assigned; reload it.")
    if task.auto_dispatch:
        _send_on_commit(assignment.task_id, assignment.attempt)
    task.refresh_from_db()
    return task


def _send_on_commit(task_id, attempt):
    # A web process has no runner of its own: a worker's sends it.
    transaction.on_commit(lambda: send_assigned.delay(str(task_id), attempt))


def report_result(*, task_id, attempt, agent=None, status, result=None, error=None, retryable=False):
    """An agent's (or operator's) report for a task that was accepted with 202. Exactly one is accepted."""
    task = (
        Task.objects.filter(task_id=task_id)
        .only("task_id", "status", "attempts", "assigned_agent_id")
        .first()
    )
    if task is None or (agent is not None and task.assigned_agent_id != agent.agent_id):
        raise NotFound("No task with this id is assigned to you.")
    attempt = task.attempts if attempt is None else attempt
    if task.status not in IN_FLIGHT_STATUSES or attempt != task.attempts:
        raise Conflict(
            f"A result for this task was already recorded or this attempt ({attempt}) was superseded; "
            f"the task is {task.status} at attempt {task.attempts}."
        )
    base = {"task_id": task.task_id, "attempt": attempt, "agent_id": task.assigned_agent_id}
    if status == TaskStatus.COMPLETED:
        outcome = Outcome(**base, kind=OutcomeKind.COMPLETED, result=result, call_outcome="success")
    else:
        outcome = Outcome(
            **base,
            kind=OutcomeKind.RETRY if retryable else OutcomeKind.FAIL,
            error=error,
            reason="agent reported a failure",
            call_outcome="error",
        )
    if not apply_outcomes([outcome])[0]:  # rings dispatch: the agent's slot is free again
        raise Conflict("A result for this task was already recorded.")
    return Task.objects.get(task_id=task_id)


def prepare_execute(*, task_id):
    """Start (or join) the execution of a task. Returns (task, seconds to wait for it to settle)."""
    task = Task.objects.filter(task_id=task_id).first()
    if task is None:
        raise NotFound("No task with this id.")
    if task.status == TaskStatus.CANCELLED:
        raise Conflict("Task was cancelled; retry it first to run it again.")
    if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        return task, 0
    now = timezone.now()
    if task.status == TaskStatus.PENDING:
        if not eligibility.capable_agents_exist(task.required_capabilities, now):
            raise Conflict(
                "No capable agent is available for capabilities: "
                f"{', '.join(task.required_capabilities)}. The task stays pending."
            )
        with transaction.atomic():
            Task.objects.filter(task_id=task_id, status=TaskStatus.PENDING).update(
                auto_dispatch=True, next_attempt_at=now, updated_at=now
            )
            wake.ring()
    elif task.status == TaskStatus.ASSIGNED and task.lease_expires_at is None:
        # Assigned by an operator without auto-dispatch: this is the moment to send it.
        send_assigned.delay(str(task.task_id), task.attempts)
    attempts_left = max(1, task.max_retries - (task.attempts - task.retry_base) + 1)
    budget = (
        attempts_left * (task.timeout_seconds + settings.LEASE_GRACE_SECONDS)
        + (attempts_left - 1) * settings.TASK_RETRY_BACKOFF_MAX
    )
    if task.status in IN_FLIGHT_STATUSES:
        budget = task.timeout_seconds + settings.LEASE_GRACE_SECONDS
    wait = min(budget, settings.EXECUTE_MAX_WAIT_SECONDS)
    if task.deadline:
        wait = min(wait, max(0.0, (task.deadline - now).total_seconds()) + 1)
    return task, wait
