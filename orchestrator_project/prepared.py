"""A database cursor for the hot statements: server-side parameters, statement prepared per connection.

Django's psycopg backend binds parameters on the client (every value quoted into the SQL text, which
the server then parses and plans again) and turns psycopg's prepared statements off, so that
transaction-mode connection poolers keep working. The few statements that run on every request or
heartbeat (the task INSERT, the heartbeat UPDATE, the token lookups) use this cursor instead: psycopg
prepares each on first use on a connection and afterwards sends only the values. The service's own
connection pool (psycopg_pool) keeps connections, and with them their prepared statements; behind a
transaction-mode pooler (PgBouncer < 1.21), set DB_PREPARED_STATEMENTS=false.

The cursor is wrapped like any other Django cursor, so execute wrappers, query logging and
CaptureQueriesContext see these statements too, and counted in the django_db_* series like the engine's
own cursors (which this one bypasses): db_metrics.py.
"""

from contextlib import contextmanager
from operator import attrgetter

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django_prometheus.db.common import DatabaseWrapperMixin

from .db_metrics import counted


class _PreparingCursor(psycopg.Cursor):
    prepare = True

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=self.prepare, binary=binary)


class _PreparingRawCursor(_PreparingCursor, psycopg.RawCursor):
    """For statements written with Postgres' own $1, $2, ... placeholders: psycopg sends them as they
    are. It rewrites %s placeholders at every execution of a statement with more than 50 parameters
    (its cache stops there), which for the INSERT of a few tasks cost more than writing them."""


def _cursor_class(db, numbered):
    base = _PreparingRawCursor if numbered else _PreparingCursor
    if isinstance(db, DatabaseWrapperMixin):  # the engine counts its statements: these count too
        return counted(base, db.alias, db.vendor)
    return base


@contextmanager
def prepared_cursor(*, numbered=False):
    """numbered: the statements use $1, $2, ... placeholders (and a list of parameters), not %s."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.x` is a thread-local lookup
    db.ensure_connection()
    raw = _cursor_class(db, numbered)(db.connection)
    if db.queries_logged:
        # psycopg keeps no query text for a prepared execution, and the log (DEBUG, or a test capturing
        # queries) wants it: these statements then run unprepared, with the same server-side binding.
        raw.prepare = False
        cursor = db.make_debug_cursor(raw)
    else:
        raw.prepare = settings.DB_PREPARED_STATEMENTS
        cursor = db.make_cursor(raw)
    with cursor:
        yield cursor


def insert_value_reader(field):
    """How `field`'s value is read off an instance for a prepared INSERT, as Model.save() would write it.

    Model.save() prepares every value through its field (get_db_prep_save), which on the hot create
    paths cost as much as the round trip. Only JSON columns need that (psycopg's Jsonb wrapper) and the
    auto_now timestamps their pre_save; every other attribute goes to psycopg as it is."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda instance: field.pre_save(instance, True)
    if isinstance(field, models.JSONField):
        return lambda instance: field.get_db_prep_save(getattr(instance, field.attname), connection)
    return attrgetter(field.attname)


def one_line(sql):
    """`sql` with each run of whitespace made one space: the hot statements' text stays under psycopg's
    4,096 characters, past which it parses the placeholders again at every execution. For statements
    written here, whose string literals never hold two spaces or a line break running."""
    return " ".join(sql.split())
