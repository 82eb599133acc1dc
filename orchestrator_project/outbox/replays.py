"""Operators republish past events (POST /api/v1/events/replay): a window of time or one entity's.

The request only records what to send; the relay works it off beside the live events, a chunk at a time
(relay.py), with each event's original id and sequence, so consumers that already have it drop it.
"""

from django.db import connection
from django.db.models import Max

from .models import OutboxEvent, Replay


def request_replay(*, since=None, until=None, aggregate_id=None, requested_by=""):
    """Record a replay of the published events matching the filters; returns the Replay (with `total`)."""
    until_position = OutboxEvent.objects.aggregate(last=Max("position"))["last"] or 0
    matching = OutboxEvent.objects.filter(position__lte=until_position, published_at__isnull=False)
    if since is not None:
        matching = matching.filter(created_at__gte=since)
    if until is not None:
        matching = matching.filter(created_at__lt=until)
    if aggregate_id is not None:
        matching = matching.filter(aggregateid=aggregate_id)
    return Replay.objects.create(
        since=since,
        until=until,
        aggregateid=aggregate_id,
        requested_by=requested_by,
        until_position=until_position,
        total=matching.count(),
    )


def prune(*, older_than, batch=10_000):
    """Delete published events created before `older_than`, and finished replays; returns how many
    events went. In batches, so no statement holds locks for long; unpublished events always stay."""
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"""DELETE FROM {OutboxEvent._meta.db_table} WHERE position IN (
                        SELECT position FROM {OutboxEvent._meta.db_table}
                        WHERE created_at < %s AND published_at IS NOT NULL LIMIT %s)""",
                [older_than, batch],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < batch:
                break
    Replay.objects.filter(finished_at__lt=older_than).delete()
    return deleted
