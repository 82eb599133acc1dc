"""An agent's load, figures and circuit breaker: the API the task engine uses to take and give back work.

- `lock(agent_ids)`: lock agent rows in id order, the one order every path locks them in;
  `lock_unheld` takes only those no other transaction holds, for dispatch rounds, which never wait.
- `reserve(slots, probes, now)`: take slots with guarded increments; returns the agents that took them.
- `release(agent_id, verdict, now)`: give a slot back and fold what the call said about the agent into
  its figures and breaker; `release_successes` does it for a batch of successes in one statement.
- `record_acceptance(agent_id, latency_ms, now)`: the agent took a task (202) and keeps the slot.
- `retire(agent_id, reason)`: the agent said 410 Gone; it gets nothing new until an operator resumes it.

Each runs inside the caller's transaction, so the agent's row changes with the task's. A statement that
may move a circuit's state also writes its `agent.circuit_changed` event (outbox.py), in itself. The circuit
state lives in Postgres, so every process sees the same breaker: after CIRCUIT_BREAKER_FAILURE_THRESHOLD
failures in a row it opens until `circuit_retry_at`; then a dispatch round flips it to half-open with a
guarded update, which lets exactly one probe task through (eligibility.py).
"""

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from uuid import UUID

from django.conf import settings
from django.db import transaction

from orchestrator_project import live
from orchestrator_project.live.messages import AGENT_CHANGE_COLUMNS, agent_change_from_row
from orchestrator_project.outbox import writer
from orchestrator_project.pg_arrays import array_literal
from orchestrator_project.prepared import one_line, prepared_cursor

from . import changes, eligibility, outbox, routing
from .models import Agent, AgentStatus, CircuitState

# Moving averages: recent calls weigh 20% (latency) and 10% (success rate).
LATENCY_ALPHA = 0.2
SUCCESS_ALPHA = 0.1

_RETURNING = ", ".join(AGENT_CHANGE_COLUMNS)
_RETURNING_A = ", ".join(f"a.{column}" for column in AGENT_CHANGE_COLUMNS)
_CIRCUIT_STATE = AGENT_CHANGE_COLUMNS.index("circuit_state")


class Verdict(enum.Enum):
    """What a finished task says about its agent."""

    SUCCESS = "success"  # closes the circuit
    FAILURE = "failure"  # the agent's fault (timeout, 5xx, broken answer): counts towards tripping
    BLAMELESS_FAILURE = "blameless_failure"  # failed, but says nothing of its health (429, a refusal)
    NEUTRAL = "neutral"  # cancelled or handed back: the agent did nothing wrong and nothing right


@dataclass(frozen=True)
class Released:
    agent_id: UUID
    # Set when this release tripped the breaker: when its probe may go (dispatch must wake then).
    circuit_retry_at: datetime | None


# The breaker trips on a failure that counts when the probe failed or the run of failures reaches the
# threshold. Written once, used for each of the columns the trip sets.
_TRIPS = f"(circuit_state = '{CircuitState.HALF_OPEN}' OR consecutive_failures + 1 >= %(threshold)s)"
# Anything but a success or a counting failure ends a half-open probe without a verdict: the circuit
# goes back to open, due at once, so that another probe may go.
_PROBE_BACK = f"""
    circuit_state = CASE WHEN circuit_state = '{CircuitState.HALF_OPEN}' THEN '{CircuitState.OPEN}'
                         ELSE circuit_state END,
    circuit_retry_at = CASE WHEN circuit_state = '{CircuitState.HALF_OPEN}' THEN %(now)s
                            ELSE circuit_retry_at END"""
_CLOSE = f"""consecutive_failures = 0, circuit_state = '{CircuitState.CLOSED}',
    circuit_opened_at = NULL, circuit_retry_at = NULL"""


def _latency_average(weight):
    """The moving average of latency after folding in %(latency)s with `weight` (SQL)."""
    return f"""CASE WHEN %(latency)s::float IS NULL THEN avg_latency_ms
                    WHEN avg_latency_ms IS NULL THEN %(latency)s::float
                    ELSE avg_latency_ms * (1 - {weight}) + %(latency)s::float * {weight} END"""


_VERDICT_SETS = {
    Verdict.SUCCESS: f"""success_count = success_count + 1, {_CLOSE},
        success_rate = success_rate * (1 - {SUCCESS_ALPHA}) + {SUCCESS_ALPHA},
        avg_latency_ms = {_latency_average(LATENCY_ALPHA)}""",
    Verdict.FAILURE: f"""failure_count = failure_count + 1,
        consecutive_failures = consecutive_failures + 1,
        success_rate = success_rate * (1 - {SUCCESS_ALPHA}),
        circuit_state = CASE WHEN {_TRIPS} THEN '{CircuitState.OPEN}' ELSE circuit_state END,
        circuit_opened_at = CASE WHEN {_TRIPS} THEN %(now)s ELSE circuit_opened_at END,
        circuit_retry_at = CASE WHEN {_TRIPS} THEN %(retry_at)s ELSE circuit_retry_at END""",
    Verdict.BLAMELESS_FAILURE: f"failure_count = failure_count + 1, {_PROBE_BACK}",
    Verdict.NEUTRAL: _PROBE_BACK,
}


def circuit_update(
    *, lock, sets, where="true", source="", returning=_RETURNING, at="%(now)s::timestamptz", learn=False
):
    """`UPDATE agents AS a SET <sets> WHERE <where>` on the agents `lock` selects (locked in id order),
    returning `returning` per updated agent, and an `agent.circuit_changed` event for every one whose
    circuit state moved. `source` adds to the FROM clause (`, unnest(...) AS v`). `learn`: the same
    statement folds the calls' samples into what routing learned (routing.py, its %(r_*)s parameters).

    The `old` CTE reads each agent's circuit state under the row lock, so it is the state this update
    replaces even when another transaction changed it while this one waited.
    """
    return _circuit_update(lock, sets, where, source, returning, at, learn, writer.enabled())


@cache
def _circuit_update(lock, sets, where, source, returning, at, learn, publish):
    # Built once per shape, and on one line: psycopg parses a statement's placeholders again at every
    # call when its text is longer than 4,096 characters, and this one, indented, was (0.3 ms a batch).
    published = outbox.circuit_changed_ctes("moved", at=at) if publish else ""
    learned = f", learned AS ({routing.route_upsert_sql('moved')})" if learn else ""
    return one_line(f"""
        WITH old AS (
            SELECT agent_id, circuit_state AS old_circuit FROM {Agent._meta.db_table}
            WHERE {lock} ORDER BY agent_id FOR UPDATE
        ), moved AS (
            UPDATE {Agent._meta.db_table} AS a SET {sets} FROM old{source}
            WHERE a.agent_id = old.agent_id AND {where}
            RETURNING a.agent_id, a.name, a.status, a.current_load, a.max_concurrency, a.circuit_state,
                      a.consecutive_failures, a.circuit_retry_at, old.old_circuit
        ){published}{learned}
        SELECT {returning} FROM moved""")


def _probe_flip():
    return circuit_update(
        lock="agent_id = %(agent)s",
        sets=f"circuit_state = '{CircuitState.HALF_OPEN}', current_load = current_load + 1, "
        "updated_at = %(now)s",
        where=f"{eligibility.ONLINE_SQL} AND {eligibility.PROBE_DUE_SQL}",
        returning="agent_id",
    )


def _publish(rows, now):
    messages = [agent_change_from_row(row, now) for row in rows]
    if messages:
        transaction.on_commit(lambda: live.publish_agent_changes(messages))


_LOCK_SQL = "SELECT agent_id FROM agents_agent WHERE agent_id = ANY(%s::uuid[]) ORDER BY agent_id FOR UPDATE"


def lock(agent_ids):
    """Lock the agents' rows in id order. Batches of outcomes and probe rounds lock agents in this
    order before anything else of theirs, so they wait for each other instead of deadlocking
    (tests/chaos). Dispatch rounds never wait: see `lock_unheld`."""
    agent_ids = sorted({str(agent_id) for agent_id in agent_ids if agent_id})
    if agent_ids:
        with prepared_cursor() as cursor:
            cursor.execute(_LOCK_SQL, [array_literal(agent_ids)])


def lock_unheld(agent_ids):
    """Lock those of the agents' rows that no other transaction holds, without waiting for the rest;
    returns the ids locked (as strings). A dispatch round that waited here sat behind a batch of
    outcomes, which holds its agents until it commits: most of a busy dispatcher's time."""
    agent_ids = sorted({str(agent_id) for agent_id in agent_ids if agent_id})
    if not agent_ids:
        return set()
    with prepared_cursor() as cursor:
        cursor.execute(_LOCK_SQL + " SKIP LOCKED", [array_literal(agent_ids)])
        return {str(row[0]) for row in cursor.fetchall()}


def reserve(slots, *, probes, now, locked=False):
    """Take `slots[agent_id]` slots on each agent; `probes` are open circuits chosen for their probe.

    Returns the ids of the agents that took them. An agent that filled up, went offline or tripped
    since it was chosen takes nothing (the guards are the eligibility rule's own SQL). `locked`: the
    caller holds the agents' rows already.
    """
    accepted = set()
    if not locked:
        lock(slots)
    regular = [agent_id for agent_id in slots if agent_id not in probes]
    with prepared_cursor() as cursor:
        if regular:
            # One guarded UPDATE for all of them, not one statement per agent.
            cursor.execute(
                f"""UPDATE agents_agent AS a SET current_load = a.current_load + v.n, updated_at = %(now)s
                    FROM unnest(%(agents)s::uuid[], %(counts)s::int[]) AS v(agent_id, n)
                    WHERE a.agent_id = v.agent_id AND {eligibility.ONLINE_SQL}
                      AND {eligibility.closed_with_room_sql(slots="v.n")}
                    RETURNING {_RETURNING_A}""",
                {
                    "now": now,
                    "agents": array_literal(regular),
                    "counts": array_literal([slots[agent_id] for agent_id in regular]),
                },
            )
            taken = cursor.fetchall()
            accepted.update(row[0] for row in taken)
            # The dashboard's load column goes up as well as down (one live batch per round).
            _publish(taken, now)
        for agent_id in slots:
            if agent_id not in probes:
                continue
            # Open -> half-open exactly once: whoever flips it owns the single probe.
            cursor.execute(_probe_flip(), {"now": now, "agent": agent_id})
            if cursor.fetchall():
                accepted.add(agent_id)
    return accepted


def release(agent_id, *, verdict, now, latency_ms=None, route=None):
    """Free the slot a task held on `agent_id` and record the verdict. Returns a Released, or None when
    there was no agent (it was unregistered meanwhile). `route`: the call's routing.Sample, learned in
    the same statement."""
    if agent_id is None:
        return None
    params = {
        "agent": agent_id,
        "now": now,
        "latency": latency_ms,
        "threshold": settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD,
        "retry_at": now + timedelta(seconds=settings.CIRCUIT_BREAKER_RECOVERY_TIMEOUT),
    }
    if route is not None:
        params.update(routing.route_params([route]))
    with prepared_cursor() as cursor:
        cursor.execute(
            circuit_update(
                lock="agent_id = %(agent)s",
                sets=f"current_load = GREATEST(current_load - 1, 0), {_VERDICT_SETS[verdict]}, "
                "updated_at = %(now)s",
                returning=f"{_RETURNING}, circuit_retry_at",
                learn=route is not None,
            ),
            params,
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    _publish([row[:-1] for row in rows], now)
    tripped = verdict is Verdict.FAILURE and rows[0][_CIRCUIT_STATE] == CircuitState.OPEN
    return Released(agent_id, rows[0][-1] if tripped else None)


def release_successes(calls, *, now):
    """`release(..., verdict=SUCCESS)` for many calls at once: one UPDATE for all their agents, which
    also folds them into what routing learned (routing.py).

    `calls`: (agent_id, latency_ms or None, routing key) triples. n successes fold into the moving
    averages as n steps would: the success rate becomes 1 - (1 - rate) * (1 - a)^n, and the latency
    moves towards the batch's mean by 1 - (1 - a)^n.
    """
    per_agent = {}
    samples = [
        routing.Sample(agent_id, key, latency_ms, ok=True) for agent_id, latency_ms, key in calls if agent_id
    ]
    for agent_id, latency_ms, _ in calls:
        if agent_id is None:
            continue
        count, latencies = per_agent.setdefault(agent_id, [0, []])
        per_agent[agent_id][0] = count + 1
        if latency_ms is not None:
            latencies.append(latency_ms)
    if not per_agent:
        return
    agent_ids = sorted(per_agent, key=str)  # the order every path locks agents in
    counts = [per_agent[a][0] for a in agent_ids]
    means = [sum(per_agent[a][1]) / len(per_agent[a][1]) if per_agent[a][1] else None for a in agent_ids]
    with prepared_cursor() as cursor:
        cursor.execute(
            circuit_update(
                lock="agent_id = ANY(%(agents)s::uuid[])",
                sets=f"""current_load = GREATEST(a.current_load - v.n, 0),
                    success_count = a.success_count + v.n,
                    {_CLOSE},
                    success_rate = 1 - (1 - a.success_rate) * power(1 - {SUCCESS_ALPHA}, v.n),
                    avg_latency_ms = CASE WHEN v.latency IS NULL THEN a.avg_latency_ms
                                          WHEN a.avg_latency_ms IS NULL THEN v.latency
                                          ELSE a.avg_latency_ms * power(1 - {LATENCY_ALPHA}, v.n)
                                               + v.latency * (1 - power(1 - {LATENCY_ALPHA}, v.n)) END,
                    updated_at = %(now)s""",
                source=", unnest(%(agents)s::uuid[], %(counts)s::int[], %(means)s::float8[])"
                " AS v(agent_id, n, latency)",
                where="a.agent_id = v.agent_id",
                learn=True,
            ),
            {
                "now": now,
                "agents": array_literal(agent_ids),
                "counts": array_literal(counts),
                "means": array_literal(means),
                **routing.route_params(samples),
            },
        )
        _publish(cursor.fetchall(), now)


def record_acceptance(agent_id, *, latency_ms, now):
    """The agent took the task (202): it is healthy, but the slot stays held until it reports."""
    with prepared_cursor() as cursor:
        cursor.execute(
            circuit_update(
                lock="agent_id = %(agent)s",
                sets=f"{_CLOSE}, avg_latency_ms = {_latency_average(LATENCY_ALPHA)}, updated_at = %(now)s",
            ),
            {"agent": agent_id, "now": now, "latency": latency_ms},
        )
        _publish(cursor.fetchall(), now)


def retire(agent_id, *, now, reason):
    """The agent said 410 Gone: it gets nothing new until an operator resumes it (a sticky drain)."""
    changes.apply(
        where=f"agent_id = %(agent)s AND NOT (status = '{AgentStatus.DRAINING}' AND drained_by_operator)",
        assignments=f"status = '{AgentStatus.DRAINING}', drained_by_operator = true",
        params={"agent": agent_id},
        reason=reason,
        now=now,
    )
