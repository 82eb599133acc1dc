"""Postgres advisory locks that keep a periodic sweep to one runner at a time.

Beat can fire twice (two beat processes by mistake, or a late message and a fresh one), and several
workers take messages; the transaction-scoped try-lock makes the extra runs return at once instead of
doing the same work concurrently. It is released by the commit, so a crashed worker never holds it.
"""

import hashlib

from django.db import connection


def _key(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def try_sweep_lock(name):
    """Take the lock named `name` for the current transaction; False if another transaction holds it."""
    assert connection.in_atomic_block, "an advisory xact lock needs a transaction"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_key(name)])
        return cursor.fetchone()[0]
