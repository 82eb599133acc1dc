"""The one way a task changes status: `move(kind, steps)`, for one task or a batch.

Each call is one statement. An UPDATE guarded by the transition's source statuses (models.LIFECYCLE)
and, unless the caller holds the rows locked, by the attempt number: the fencing token, so the answer
of a superseded attempt (a stalled worker waking up, a slow agent answering after its lease expired)
matches no row and changes nothing. A CTE of the same statement inserts one event row per task moved,
and another its outbox event (outbox.py), numbered by the task's own event_sequence, which the UPDATE
bumps. After the commit every moved task is announced live (orchestrator_project.live); tasks that failed for
good are also told to signals.tasks_failed, inside the transaction. Tasks that are workflow steps
(Task.workflow_step_id) and reach a terminal status are told to signals.step_tasks_ended, inside the
transaction too, so the run advances in the same commit as the task's move.

Creation is the one transition that is an INSERT: services.py writes it, with its event row from
`created_event_sql` and its message from `announce_created`.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from uuid import UUID

from django.db import transaction

from orchestrator_project import live
from orchestrator_project.live.messages import task_transition
from orchestrator_project.outbox import writer
from orchestrator_project.pg_arrays import array_literal
from orchestrator_project.prepared import prepared_cursor

from . import outbox
from .models import LIFECYCLE, TERMINAL_STATUSES, EventKind, Task, TaskEvent, TaskStatus, sql_list
from .signals import step_tasks_ended, tasks_failed

REASON_LIMIT = 2000
# What a transition's live message measures from the task's creation (the metrics' histograms).
_TIMING = {
    EventKind.ASSIGNED: "queue_wait_seconds",
    EventKind.SENT: "dispatch_latency_seconds",
    EventKind.COMPLETED: "duration_seconds",
    EventKind.FAILED: "duration_seconds",
    EventKind.CANCELLED: "duration_seconds",
}
# What a retry's live message carries of its event's details: when it is due, and for a prompt failover
# how long the agents it tried are off limits (engine/outcomes.py). Counted by the metrics.
_RETRY_TIMING = ("retry_in_seconds", "failover_seconds")


def retry_timing(seconds, *, failover):
    """A retry's timing as its event and live message say it: due in `seconds`, or for a prompt failover
    due at once, with the agents it tried off limits for `seconds`."""
    if failover:
        return {"retry_in_seconds": 0.0, "failover_seconds": round(seconds, 3)}
    return {"retry_in_seconds": round(seconds, 3)}


_EVENT_INSERT = (
    f"INSERT INTO {TaskEvent._meta.db_table}"
    " (task_id, kind, status, attempt, agent_id, reason, details, created_at)"
)


@dataclass(slots=True)
class Step:
    """One task's part in a move."""

    task_id: UUID
    # The attempt the caller acts for (the fence); None when the caller holds the row locked.
    attempt: int | None = None
    # The agent the event names: the one assigned, or the one whose attempt ended.
    agent_id: UUID | None = None
    reason: str = ""
    details: dict | None = None
    # How the agent call went (success, timeout, ...): counted by the metrics.
    call_outcome: str = ""
    # The statement's own per-row values, in the order of `move(columns=...)`.
    values: tuple = ()


@dataclass(frozen=True, slots=True)
class EndedStepTask:
    """A workflow step's task that ended: what signals.step_tasks_ended carries."""

    task_id: UUID
    attempt: int
    step_run_id: int
    status: str
    # The task's result and error as JSON text (NULL stays None): read by the same RETURNING.
    result_json: str | None
    error_json: str | None


@dataclass(slots=True)
class Moved:
    """A task that moved, as the statement left it."""

    step: Step
    task_id: UUID
    attempt: int
    priority: int
    type: str
    capabilities: list
    created_at: datetime
    workflow_step_id: int | None = None
    returned: tuple = field(default=())  # the caller's `returning` expressions, in order


def _step_json(column):
    """A task's JSON column for the workflow hook: only for workflow steps' tasks, NULL for the rest."""
    return f"CASE WHEN t.workflow_step_id IS NOT NULL THEN {column}::text END"


@cache
def _statement(kind, assignments, columns, fenced, join, returning, publish):
    move = LIFECYCLE[kind]
    ended = move.target in TERMINAL_STATUSES
    names = ", ".join(["task_id", "attempt", "agent_id", "reason", "details", *(n for n, _ in columns)])
    arrays = ", ".join(
        [
            "%(task_ids)s::uuid[]",
            "%(attempts)s::int[]",
            "%(agent_ids)s::uuid[]",
            "%(reasons)s::text[]",
            "%(details)s::text[]::jsonb[]",
            *(f"%(v_{name})s::{sql_type}[]" for name, sql_type in columns),
        ]
    )
    sets = f"status = '{move.target}', updated_at = %(now)s, event_sequence = t.event_sequence + 1" + (
        f", {assignments}" if assignments else ""
    )
    fence = " AND t.attempts = v.attempt" if fenced else ""
    step_result, step_error = (_step_json("t.result"), _step_json("t.error")) if ended else ("NULL", "NULL")
    if kind == EventKind.FAILED:
        returning = (*returning, "t.error")  # for the failure notice
    # Named apart: they may repeat the statement's own columns (t.task_id, say).
    extra = "".join(f", {expression} AS returned_{index}" for index, expression in enumerate(returning))
    published = f", published AS ({outbox.status_changed_sql(kind, move.target, 'moved')})" if publish else ""
    return f"""
        WITH moved AS (
            UPDATE {Task._meta.db_table} AS t SET {sets}
            FROM unnest({arrays}) WITH ORDINALITY AS v({names}, step) {join}
            WHERE t.task_id = v.task_id AND t.status IN {sql_list(move.sources)}{fence}
            RETURNING v.step, t.task_id, t.attempts, v.agent_id, v.reason, v.details, t.priority, t.type,
                      t.required_capabilities, t.created_at, t.event_sequence, t.workflow_step_id,
                      {step_result}, {step_error}{extra}
        ), logged AS (
            {_EVENT_INSERT}
            SELECT task_id, '{kind}', '{move.target}', attempts, agent_id, reason, details, %(now)s FROM moved
        ){published}
        SELECT * FROM moved"""


def move(kind, steps, *, now, assignments="", columns=(), params=None, fenced=True, join="", returning=()):
    """Move the tasks of `steps` through the transition `kind`; returns the Moved ones.

    assignments: more of the SET clause (`t` is the task before the move, `v` the step's row:
        v.agent_id, v.attempt and the `columns`)
    columns: ((name, SQL type), ...) of per-row values, each step's `values` in this order
    params: named parameters the assignments use besides %(now)s
    fenced: guard on the attempt; False only for callers that hold the rows locked
    join: more of the FROM clause (the assignment joins the agent, for its address)
    returning: more expressions to return, per moved task (Moved.returned)
    """
    if not steps:
        return []
    sql = _statement(kind, assignments, tuple(columns), fenced, join, tuple(returning), writer.enabled())
    details = [None if step.details is None else json.dumps(step.details) for step in steps]
    values = {
        "now": now,
        "task_ids": array_literal([step.task_id for step in steps]),
        "attempts": array_literal([step.attempt for step in steps]),
        "agent_ids": array_literal([step.agent_id for step in steps]),
        "reasons": array_literal([step.reason[:REASON_LIMIT] for step in steps]),
        "details": array_literal(details),
        **(params or {}),
    }
    for index, (name, _) in enumerate(columns):
        values[f"v_{name}"] = array_literal([step.values[index] for step in steps])
    with prepared_cursor() as cursor:
        cursor.execute(sql, values)
        rows = cursor.fetchall()
    moved = [
        Moved(steps[row[0] - 1], row[1], row[2], row[6], row[7], row[8], row[9], row[11], tuple(row[14:]))
        for row in rows
    ]
    _announce(kind, moved, now)
    target = LIFECYCLE[kind].target
    ended = [
        EndedStepTask(row[1], row[2], row[11], target, row[12], row[13])
        for row in rows
        if row[11] is not None and target in TERMINAL_STATUSES
    ]
    if ended:
        step_tasks_ended.send(sender=Task, ended=ended)
    return moved


def _timing(kind, name, moved, now):
    """The timings a transition's live message carries (task_transition's `timing`), or None."""
    found = {name: (now - moved.created_at).total_seconds()} if name else {}
    if kind == EventKind.RETRYING and moved.step.details:
        found.update({key: moved.step.details[key] for key in _RETRY_TIMING if key in moved.step.details})
    return found or None


def _announce(kind, moved, now):
    target = LIFECYCLE[kind].target
    timing = _TIMING.get(kind)
    messages = [
        task_transition(
            task_id=m.task_id,
            kind=kind,
            status=target,
            attempt=m.attempt,
            agent_id=m.step.agent_id,
            at=now,
            priority=m.priority,
            task_type=m.type,
            capabilities=m.capabilities,
            timing=_timing(kind, timing, m, now),
            agent_call_outcome=m.step.call_outcome,
        )
        for m in moved
    ]
    if messages:
        transaction.on_commit(lambda: live.publish_task_transitions(messages))
    if kind == EventKind.FAILED and moved:
        failures = [
            {
                "task_id": m.task_id,
                "type": m.type,
                "attempts": m.attempt,
                "reason": m.step.reason,
                "error": None if m.returned[-1] is None else json.loads(m.returned[-1]),
            }
            for m in moved
        ]
        tasks_failed.send(sender=Task, failures=failures)


def created_event_sql(source):
    """The INSERT of creation events for the tasks `source` (a CTE or table with task_id, created_at)."""
    return (
        f"{_EVENT_INSERT} SELECT task_id, '{EventKind.CREATED}', '{TaskStatus.PENDING}', 0, NULL, '', NULL,"
        f" created_at FROM {source}"
    )


def announce_created(tasks):
    """Live messages for new tasks, after the commit that created them."""
    messages = [
        task_transition(
            task_id=t.task_id,
            kind=EventKind.CREATED,
            status=TaskStatus.PENDING,
            attempt=0,
            agent_id=None,
            at=t.created_at,
            priority=t.priority,
            task_type=t.type,
            capabilities=t.required_capabilities,
        )
        for t in tasks
    ]
    transaction.on_commit(lambda: live.publish_task_transitions(messages))
