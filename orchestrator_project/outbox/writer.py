"""How agents and tasks write events: SQL pieces for their own statements, and `append` for the rest.

The hot paths (a task's move, its creation, an agent's status change) add the outbox INSERT as one more
CTE of the statement that makes the change, so an event costs no round trip and can never be missing or
left over: the change and its event commit together or not at all. With EVENT_SINK=none no event is
written; the statements are built once per process, so `enabled()` is read when they are built.
"""

import json

from django.conf import settings
from django.db import connection

from .models import EntitySequence, OutboxEvent

EVENT_TYPE_PREFIX = "io.orchestrator."
COLUMNS = "aggregatetype, aggregateid, type, payload, sequence, created_at"
INSERT = f"INSERT INTO {OutboxEvent._meta.db_table} ({COLUMNS})"


def enabled():
    return settings.EVENT_SINK != "none"


def event_type(name):
    """The CloudEvents type of an event named like `task.created`: io.orchestrator.task.created.v1."""
    return f"{EVENT_TYPE_PREFIX}{name}.v1"


def next_sequence_cte(name, *, aggregatetype, source):
    """A CTE `name` (aggregateid, sequence) that takes the next number for each entity in `source`.

    `source` must be a CTE or table with one row per entity, `aggregateid` among its columns, and the
    statement must hold those entities' rows locked (it changes them): then no other transaction can
    take a number for the same entity before this one commits, and ON CONFLICT reads the latest value.
    """
    table = EntitySequence._meta.db_table
    return f"""{name} AS (
            INSERT INTO {table} AS s (aggregatetype, aggregateid, value)
            SELECT '{aggregatetype}', aggregateid, 1 FROM {source}
            ON CONFLICT (aggregatetype, aggregateid) DO UPDATE SET value = s.value + 1
            RETURNING aggregateid, value AS sequence
        )"""


def forget(*, aggregatetype, aggregateid):
    """Drop the counter of an entity that is gone for good (its last event written): nothing will
    number another event of it, and its row would otherwise stay for ever."""
    EntitySequence.objects.filter(aggregatetype=aggregatetype, aggregateid=aggregateid).delete()


def append(*, aggregatetype, aggregateid, event, payload, at, sequence=None):
    """Write one event (`event`: its type, from event_type) in the caller's transaction, for paths that
    are not hot (registration, say).

    Without `sequence` the entity's next number is taken from the outbox's counter (EntitySequence);
    the caller must hold the entity's row locked.
    """
    if not enabled():
        return
    params = {
        "type": aggregatetype,
        "id": aggregateid,
        "event": event,
        "payload": json.dumps(payload),
        "at": at,
    }
    if sequence is None:
        source = "(SELECT %(id)s::uuid AS aggregateid) AS entity"
        sql = f"""WITH {next_sequence_cte("numbered", aggregatetype=aggregatetype, source=source)}
            {INSERT} SELECT %(type)s, aggregateid, %(event)s, %(payload)s::jsonb, sequence, %(at)s
            FROM numbered"""
    else:
        sql = f"{INSERT} VALUES (%(type)s, %(id)s, %(event)s, %(payload)s::jsonb, %(sequence)s, %(at)s)"
        params["sequence"] = sequence
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
