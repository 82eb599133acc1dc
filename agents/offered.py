"""Which capabilities some registered agent offers: the warning on a task that nobody can serve yet.

Asked at every creation (a task needs its type as a capability unless it names others), so the answers
are remembered per process: "offered" for OFFERED_TTL_SECONDS (agents rarely stop offering something),
"not offered" for UNOFFERED_TTL_SECONDS, so that a client creating tasks ahead of its agents costs one
indexed probe per capability per second (agent_capabilities_gin), not one per task. An agent that
registers is therefore counted within that second.
"""

import time

from django.db import connection

from .models import Agent

OFFERED_TTL_SECONDS = 30.0
UNOFFERED_TTL_SECONDS = 1.0
_KEPT = 10_000  # answers remembered at most; past that the memory starts again
_known = {}  # capability -> (offered, time.monotonic() until which the answer holds)

_OFFERED_SQL = f"""
    SELECT c FROM unnest(%s::varchar[]) AS c
    WHERE EXISTS (SELECT 1 FROM {Agent._meta.db_table} WHERE capabilities @> ARRAY[c]::varchar[])
"""


def unoffered(capabilities, *, now=None):
    """The capabilities of `capabilities` that no registered agent offers, in their order."""
    now = time.monotonic() if now is None else now
    answers = {c: _known.get(c) for c in capabilities}
    stale = [c for c, known in answers.items() if known is None or known[1] <= now]
    if stale:
        with connection.cursor() as cursor:
            cursor.execute(_OFFERED_SQL, [stale])
            found = {row[0] for row in cursor.fetchall()}
        if len(_known) + len(stale) > _KEPT:
            _known.clear()
        for c in stale:
            offered = c in found
            holds = OFFERED_TTL_SECONDS if offered else UNOFFERED_TTL_SECONDS
            answers[c] = _known[c] = (offered, now + holds)
    return [c for c in capabilities if not answers[c][0]]


def forget():
    """Forget every answer (tests: each has a database of its own)."""
    _known.clear()
