"""Recording task transitions: event rows written in bulk, live updates published after commit.

Every guarded update that changes a task adds one entry here; `flush()` writes all event rows of the
transaction in one INSERT and schedules one fan-out message for after the commit.
"""

import json

from django.db import transaction

from monitoring.events import publish_task_transitions
from orchestrator_project.prepared import prepared_cursor

# Every transition of every task passes here: one statement with arrays, not the ORM's bulk_create
# (whose query building cost more per batch than the insert itself).
_INSERT_EVENTS = """
    INSERT INTO tasks_taskevent (task_id, kind, status, attempt, agent_id, reason, details, created_at)
    SELECT * FROM unnest(%s::uuid[], %s::varchar[], %s::varchar[], %s::int[], %s::uuid[], %s::text[],
                         %s::text[]::jsonb[], %s::timestamptz[])
"""


class TransitionLog:
    def __init__(self):
        self._events = []
        self._messages = []

    def add(
        self,
        *,
        task_id,
        kind,
        status,
        attempt,
        agent_id=None,
        reason="",
        details=None,
        at,
        priority=None,
        task_type="",
        capabilities=None,
        **extra,
    ):
        self._events.append(
            (
                task_id,
                kind,
                status,
                attempt,
                agent_id,
                reason[:2000],
                None if details is None else json.dumps(details),
                at,
            )
        )
        message = {
            "task_id": str(task_id),
            "status": status,
            "agent_id": str(agent_id) if agent_id else None,
            "attempt": attempt,
            "priority": priority,
            "timestamp": at.isoformat(),
            "kind": kind,
            "type": task_type,
            "capabilities": list(capabilities or []),
        }
        message.update({key: value for key, value in extra.items() if value is not None})
        self._messages.append(message)

    def record(self, task, *, kind, status, at, agent_id=None, reason="", details=None, **extra):
        """`add` for a Task instance: attempt, priority, type and capabilities come from the task."""
        self.add(
            task_id=task.pk,
            kind=kind,
            status=status,
            attempt=task.attempts,
            agent_id=agent_id,
            at=at,
            reason=reason,
            details=details,
            priority=task.priority,
            task_type=task.type,
            capabilities=task.required_capabilities,
            **extra,
        )

    def __len__(self):
        return len(self._events)

    def flush(self):
        """Write the rows now (inside the caller's transaction) and publish after it commits."""
        if not self._events:
            return
        with prepared_cursor() as cursor:
            cursor.execute(_INSERT_EVENTS, [list(column) for column in zip(*self._events, strict=True)])
        messages = self._messages
        transaction.on_commit(lambda: publish_task_transitions(messages))
        self._events, self._messages = [], []
