"""Every status change of a run or of one of its steps: an event row and an outbox event.

The engine collects a run's changes while it holds the run locked (a `Journal`) and writes them all
with one statement at the end: the event rows, the outbox events, and the run's outbox counter bumped
once by their number. A map starting 1,000 items therefore costs one round trip, not 1,000.

Two event types (docs/event-schemas.json): `workflow_run.status_changed` and
`workflow_run.step_status_changed`, both keyed by the run id, numbered in the run's own sequence.
Payloads say what changed, not inputs or outputs (read those from the API).
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from django.db import connection, transaction
from django.dispatch import Signal

from orchestrator_project.outbox import writer
from orchestrator_project.outbox.models import EntitySequence, OutboxEvent
from orchestrator_project.pg_arrays import array_literal

from .models import WHOLE_STEP, WorkflowEvent

AGGREGATE = "workflow_run"
RUN_STATUS_CHANGED = writer.event_type("workflow_run.status_changed")
STEP_STATUS_CHANGED = writer.event_type("workflow_run.step_status_changed")
REASON_LIMIT = 2000

# After the commit of the journals of a batch of runs: their changes, for live views and metrics (sent
# with `changes`, a list of Change). Nothing in this app listens; the dashboard and metrics may.
changes_committed = Signal()


@dataclass(frozen=True, slots=True)
class Change:
    run_id: object
    step_id: str  # "" for the run itself
    map_index: int
    status: str
    attempt: int
    reason: str
    payload: dict
    # A step (or item) that ended after it started: its kind and seconds from start to end (metrics).
    kind: str = ""
    seconds: float | None = None


@dataclass
class Journal:
    """The changes of one locked run, written by `flush` in one statement."""

    run_id: object
    workflow: str
    version: int
    now: object
    changes: list = field(default_factory=list)

    def run_changed(self, status, reason=""):
        self.changes.append(
            Change(
                self.run_id,
                "",
                WHOLE_STEP,
                status,
                0,
                reason[:REASON_LIMIT],
                {
                    "run_id": str(self.run_id),
                    "workflow": self.workflow,
                    "version": self.version,
                    "status": status,
                    "reason": reason[:REASON_LIMIT],
                    "at": self.now.isoformat(),
                },
            )
        )

    def step_changed(self, step, reason=""):
        seconds = None
        if step.is_terminal and step.started_at is not None and step.finished_at is not None:
            seconds = (step.finished_at - step.started_at).total_seconds()
        self.changes.append(
            Change(
                self.run_id,
                step.step_id,
                step.map_index,
                step.status,
                step.attempt,
                reason[:REASON_LIMIT],
                {
                    "run_id": str(self.run_id),
                    "step_id": step.step_id,
                    "map_index": None if step.map_index == WHOLE_STEP else step.map_index,
                    "kind": step.kind,
                    "status": step.status,
                    "attempt": step.attempt,
                    "task_id": None if step.task_id is None else str(step.task_id),
                    "reason": reason[:REASON_LIMIT],
                    "at": self.now.isoformat(),
                },
                step.kind,
                seconds,
            )
        )

    def flush(self):
        flush_journals([self])


def flush_journals(journals, *, along=()):
    """Write the changes collected by the journals of several locked runs (the caller holds them
    locked, so their counters are ours) in one statement: one round trip for a whole batch of runs.

    along: other writes of the same transaction, as (sql, named parameters) of data-modifying
    statements (rows.update_statement), run as part of this one: the round trip each would cost
    alone was a good part of a step's hand-over. Their parameter names must differ from each other's
    and from the journal's."""
    journals = [j for j in journals if j.changes]
    along = [statement for statement in along if statement is not None]
    if not journals and not along:
        return
    params = defaultdict(list)
    for journal in journals:
        changes = journal.changes
        params["counted_runs"].append(journal.run_id)
        params["counts"].append(len(changes))
        for c in changes:
            params["runs"].append(journal.run_id)
            params["times"].append(journal.now)
            params["steps"].append(c.step_id)
            params["indexes"].append(c.map_index)
            params["statuses"].append(c.status)
            params["attempts"].append(c.attempt)
            params["reasons"].append(c.reason)
            params["types"].append(STEP_STATUS_CHANGED if c.step_id else RUN_STATUS_CHANGED)
            params["payloads"].append(json.dumps(c.payload))
    values = {name: array_literal(values) for name, values in params.items()} if journals else {}
    ctes = [f"along_{i} AS ({sql})" for i, (sql, _) in enumerate(along)]
    for _, extra in along:
        values.update(extra)
    if journals:
        sql = _SQL_PUBLISHED if writer.enabled() else _SQL_LOGGED
        if ctes:
            sql = f"WITH {', '.join(ctes)}, {sql.removeprefix('WITH ')}"
    else:
        sql = f"WITH {', '.join(ctes)} SELECT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
    if not journals:
        return
    changes = [change for journal in journals for change in journal.changes]
    for journal in journals:
        journal.changes = []
    transaction.on_commit(partial(changes_committed.send, sender=Journal, changes=changes))


_CHANGES = f"""ev AS (
        SELECT * FROM unnest(%(runs)s::uuid[], %(times)s::timestamptz[], %(steps)s::text[],
                             %(indexes)s::int[], %(statuses)s::text[], %(attempts)s::int[],
                             %(reasons)s::text[], %(types)s::text[], %(payloads)s::text[]::jsonb[])
               WITH ORDINALITY AS e(run_id, at, step_id, map_index, status, attempt, reason, type, payload, n)
    ), logged AS (
        INSERT INTO {WorkflowEvent._meta.db_table}
            (run_id, step_id, map_index, status, attempt, reason, created_at)
        SELECT run_id, step_id, map_index, status, attempt, reason, at FROM ev ORDER BY n
    )"""
_SQL_LOGGED = f"WITH {_CHANGES} SELECT 1"
# Each run's counter is bumped once by the number of its events, which then take the numbers in order.
_SQL_PUBLISHED = f"""WITH {_CHANGES}, counter AS (
        INSERT INTO {EntitySequence._meta.db_table} AS s (aggregatetype, aggregateid, value)
        SELECT '{AGGREGATE}', run_id, count
        FROM unnest(%(counted_runs)s::uuid[], %(counts)s::bigint[]) AS c(run_id, count)
        ORDER BY run_id
        ON CONFLICT (aggregatetype, aggregateid) DO UPDATE SET value = s.value + excluded.value
        RETURNING aggregateid, value
    )
    INSERT INTO {OutboxEvent._meta.db_table} ({writer.COLUMNS})
    SELECT '{AGGREGATE}', ev.run_id, ev.type, ev.payload,
           counter.value - count(*) OVER w + row_number() OVER w, ev.at
    FROM ev JOIN counter ON counter.aggregateid = ev.run_id
    WINDOW w AS (PARTITION BY ev.run_id ORDER BY ev.n
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ORDER BY ev.n"""
