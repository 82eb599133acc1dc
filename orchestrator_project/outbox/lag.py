"""How far behind the relay is, read from the outbox itself: the same figures for /metrics,
/health/detailed, the dashboard and the admin, true whichever relay process is (or is not) running."""

from django.db import connection

from .models import OutboxEvent
from .relay import LOCK_KEY

_LAG = f"""
    SELECT count(*), min(created_at), EXTRACT(EPOCH FROM statement_timestamp() - min(created_at))
    FROM {OutboxEvent._meta.db_table} WHERE published_at IS NULL"""
# Whether a relay holds the leader's lock: pg_locks shows an advisory key as its two 32-bit halves.
_LEADER = """
    SELECT EXISTS (
        SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid::bigint = %(high)s AND objid::bigint = %(low)s AND objsubid = 1
    )"""


def relay_lag():
    """{unpublished: rows waiting, oldest_unpublished_at, lag_seconds (0 when nothing waits),
    leader: whether a relay holds the lock}."""
    with connection.cursor() as cursor:
        cursor.execute(_LAG)
        count, oldest, seconds = cursor.fetchone()
        unsigned = LOCK_KEY & 0xFFFFFFFFFFFFFFFF
        cursor.execute(_LEADER, {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF})
        leader = cursor.fetchone()[0]
    return {
        "unpublished": count,
        "oldest_unpublished_at": oldest,
        "lag_seconds": float(seconds or 0.0),
        "leader": leader,
    }
