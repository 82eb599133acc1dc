"""What a task's changes publish: the outbox rows' SQL, one more CTE of the statement making the change.

Two event types (docs/events.md has their schemas): `task.created`, and `task.status_changed` for every
transition of models.LIFECYCLE, naming the transition. Payloads say what changed, not the task's input
or result (those can be large or sensitive; consumers that need them read the API).
"""

from orchestrator_project.outbox import writer

AGGREGATE = "task"
CREATED = writer.event_type("task.created")
STATUS_CHANGED = writer.event_type("task.status_changed")


def created_sql(source):
    """The INSERT of `task.created` events for the tasks in `source` (a CTE or table with the task's
    columns task_id, type, priority, required_capabilities, status, event_sequence, created_at)."""
    return f"""{writer.INSERT}
        SELECT '{AGGREGATE}', task_id, '{CREATED}',
               jsonb_build_object('task_id', task_id, 'type', type, 'priority', priority,
                                  'required_capabilities', required_capabilities, 'status', status,
                                  'attempt', 0, 'at', created_at),
               event_sequence, created_at
        FROM {source}"""


def status_changed_sql(kind, target, source):
    """The INSERT of `task.status_changed` events for the tasks a move returned in `source`
    (task_id, attempts, agent_id, reason, type, priority, event_sequence); %(now)s is the move's time."""
    return f"""{writer.INSERT}
        SELECT '{AGGREGATE}', task_id, '{STATUS_CHANGED}',
               jsonb_build_object('task_id', task_id, 'transition', '{kind}', 'status', '{target}',
                                  'attempt', attempts, 'agent_id', agent_id, 'reason', reason,
                                  'type', type, 'priority', priority, 'at', %(now)s::timestamptz),
               event_sequence, %(now)s
        FROM {source}"""
