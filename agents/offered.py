"""Whether some registered agent offers a set of capabilities whole: the warning on a task that nobody
can serve yet (a task goes to one agent offering every capability it needs).

Asked at every creation (a task needs its type as a capability unless it names others), so the answers
are remembered per process: "served" for SERVED_TTL_SECONDS (agents rarely stop offering something),
"not served" for UNSERVED_TTL_SECONDS, so that a client creating tasks ahead of its agents costs one
read per second (an indexed probe per set: agent_capabilities_gin), not one per task. An agent that
registers is therefore counted within that second.
"""

import json
import time

from django.db import connection

from .models import Agent

SERVED_TTL_SECONDS = 30.0
UNSERVED_TTL_SECONDS = 1.0
_KEPT = 10_000  # answers remembered at most; past that the memory starts again
_known = {}  # sorted tuple of capabilities -> (served, time.monotonic() until which the answer holds)

# The sets come as one JSON array of arrays: Postgres arrays must be rectangular.
_SERVED_SQL = f"""
    SELECT s.n FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS s(capabilities, n)
    WHERE EXISTS (
        SELECT 1 FROM {Agent._meta.db_table}
        WHERE capabilities @> ARRAY(SELECT jsonb_array_elements_text(s.capabilities))::varchar[]
    )
"""


def unserved(capability_sets, *, now=None):
    """The sets of `capability_sets` (iterables of capabilities) that no registered agent offers whole,
    as sorted tuples. An empty set is served by any agent, and not asked about."""
    now = time.monotonic() if now is None else now
    keys = {_key(capabilities) for capabilities in capability_sets}
    keys.discard(())
    answers = {key: _known.get(key) for key in keys}
    stale = sorted(key for key, known in answers.items() if known is None or known[1] <= now)
    if stale:
        with connection.cursor() as cursor:
            cursor.execute(_SERVED_SQL, [json.dumps(stale)])
            served = {stale[n - 1] for (n,) in cursor.fetchall()}
        if len(_known) + len(stale) > _KEPT:
            _known.clear()
        for key in stale:
            holds = SERVED_TTL_SECONDS if key in served else UNSERVED_TTL_SECONDS
            answers[key] = _known[key] = (key in served, now + holds)
    return {key for key, (served, _) in answers.items() if not served}


def _key(capabilities):
    return tuple(sorted(set(capabilities)))


def warnings(requests):
    """A warning for each request (a task, a workflow step) that no registered agent can serve: none
    offers all it needs. `requests`: (the field's name, the capabilities asked for) pairs."""
    unserved_sets = unserved(capabilities for _, capabilities in requests)
    if not unserved_sets:
        return []
    # Which capabilities nobody offers at all, for the message: asked only when something is unserved.
    alone = unserved((c,) for key in unserved_sets if len(key) > 1 for c in key)
    found = []
    for field, capabilities in requests:
        key = _key(capabilities)
        if key not in unserved_sets:
            continue
        asked = list(dict.fromkeys(capabilities))
        nobody = [c for c in asked if len(key) == 1 or (c,) in alone]
        what = ", ".join(map(repr, nobody)) if nobody else "all of " + ", ".join(map(repr, asked))
        found.append(
            {"field": field, "message": f"No registered agent offers {what}: the task waits until one does."}
        )
    return found


def forget():
    """Forget every answer (tests: each has a database of its own)."""
    _known.clear()
