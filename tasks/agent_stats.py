"""An agent's load, performance figures and circuit breaker, changed together with task transitions.

The circuit state lives in Postgres, so every process sees the same breaker: after
CIRCUIT_BREAKER_FAILURE_THRESHOLD consecutive failures it opens until `circuit_retry_at`; then the
dispatcher flips it to half-open with a guarded update, which lets exactly one probe task through.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction

from monitoring.events import publish_agent_changes
from orchestrator_project.prepared import prepared_cursor

from .wake import wake_dispatch_later

# Moving averages: recent calls weigh 20% (latency) and 10% (success rate).
LATENCY_ALPHA = 0.2
SUCCESS_ALPHA = 0.1

_RETURNING = "agent_id, name, status, current_load, max_concurrency, circuit_state"


def _publish(rows, now):
    changes = [
        {
            "agent_id": str(r[0]),
            "name": r[1],
            "status": r[2],
            "current_load": r[3],
            "max_concurrency": r[4],
            "circuit_state": r[5],
            "timestamp": now.isoformat(),
        }
        for r in rows
    ]
    if changes:
        transaction.on_commit(lambda: publish_agent_changes(changes))


def release(agent_id, *, now, outcome, latency_ms=None, counts_for_circuit=True):
    """Free the slot a task held on `agent_id` and fold the call's outcome into the agent's figures.

    outcome: "success" (closes the circuit), "failure" (may open it) or "neutral" (cancellations,
    hand-backs: the agent did nothing wrong and nothing right).
    """
    if agent_id is None:
        return
    if outcome == "success":
        sql = f"""
            UPDATE agents_agent SET
                current_load = GREATEST(current_load - 1, 0),
                success_count = success_count + 1,
                consecutive_failures = 0,
                circuit_state = 'closed', circuit_opened_at = NULL, circuit_retry_at = NULL,
                success_rate = success_rate * (1 - {SUCCESS_ALPHA}) + {SUCCESS_ALPHA},
                avg_latency_ms = CASE WHEN %(latency)s::float IS NULL THEN avg_latency_ms
                                      WHEN avg_latency_ms IS NULL THEN %(latency)s::float
                                      ELSE avg_latency_ms * (1 - {LATENCY_ALPHA})
                                           + %(latency)s::float * {LATENCY_ALPHA}
                                 END,
                updated_at = %(now)s
            WHERE agent_id = %(agent)s RETURNING {_RETURNING}"""
    elif outcome == "failure" and counts_for_circuit:
        sql = f"""
            UPDATE agents_agent SET
                current_load = GREATEST(current_load - 1, 0),
                failure_count = failure_count + 1,
                consecutive_failures = consecutive_failures + 1,
                success_rate = success_rate * (1 - {SUCCESS_ALPHA}),
                circuit_state = CASE WHEN circuit_state = 'half_open'
                                       OR consecutive_failures + 1 >= %(threshold)s THEN 'open'
                                     ELSE circuit_state END,
                circuit_opened_at = CASE WHEN circuit_state = 'half_open'
                                           OR consecutive_failures + 1 >= %(threshold)s THEN %(now)s
                                         ELSE circuit_opened_at END,
                circuit_retry_at = CASE WHEN circuit_state = 'half_open'
                                          OR consecutive_failures + 1 >= %(threshold)s THEN %(retry_at)s
                                        ELSE circuit_retry_at END,
                updated_at = %(now)s
            WHERE agent_id = %(agent)s RETURNING {_RETURNING}"""
    elif outcome == "failure":
        sql = f"""
            UPDATE agents_agent SET current_load = GREATEST(current_load - 1, 0),
                failure_count = failure_count + 1, updated_at = %(now)s,
                -- not the agent's fault (e.g. it asked us to slow down): a half-open probe may go again
                circuit_state = CASE WHEN circuit_state = 'half_open' THEN 'open' ELSE circuit_state END,
                circuit_retry_at = CASE WHEN circuit_state = 'half_open' THEN %(now)s
                                        ELSE circuit_retry_at END
            WHERE agent_id = %(agent)s RETURNING {_RETURNING}"""
    else:
        sql = f"""
            UPDATE agents_agent SET current_load = GREATEST(current_load - 1, 0), updated_at = %(now)s,
                circuit_state = CASE WHEN circuit_state = 'half_open' THEN 'open' ELSE circuit_state END,
                circuit_retry_at = CASE WHEN circuit_state = 'half_open' THEN %(now)s
                                        ELSE circuit_retry_at END
            WHERE agent_id = %(agent)s RETURNING {_RETURNING}"""
    params = {
        "agent": agent_id,
        "now": now,
        "latency": latency_ms,
        "threshold": settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD,
        "retry_at": now + timedelta(seconds=settings.CIRCUIT_BREAKER_RECOVERY_TIMEOUT),
    }
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    _publish(rows, now)
    if outcome == "failure" and any(row[5] == "open" for row in rows):
        # Waiting work must be woken when the breaker lets its probe through; nothing else would.
        recovery = settings.CIRCUIT_BREAKER_RECOVERY_TIMEOUT
        transaction.on_commit(lambda: wake_dispatch_later(recovery))


def release_successes(outcomes, *, now):
    """`release(..., outcome="success")` for many calls at once: one UPDATE for all their agents.

    n successes fold into the moving averages as n steps would: the success rate becomes
    1 - (1 - rate) * (1 - a)^n, and the latency moves towards the batch's mean by 1 - (1 - a)^n.
    """
    per_agent = {}
    for outcome in outcomes:
        if outcome.agent_id is None:
            continue
        count, latencies = per_agent.setdefault(outcome.agent_id, [0, []])
        per_agent[outcome.agent_id][0] = count + 1
        if outcome.latency_ms is not None:
            latencies.append(outcome.latency_ms)
    if not per_agent:
        return
    agent_ids = sorted(per_agent, key=str)  # the order every path locks agents in
    counts = [per_agent[a][0] for a in agent_ids]
    means = [sum(per_agent[a][1]) / len(per_agent[a][1]) if per_agent[a][1] else None for a in agent_ids]
    with prepared_cursor() as cursor:
        cursor.execute(
            f"""UPDATE agents_agent AS a SET
                    current_load = GREATEST(a.current_load - v.n, 0),
                    success_count = a.success_count + v.n,
                    consecutive_failures = 0,
                    circuit_state = 'closed', circuit_opened_at = NULL, circuit_retry_at = NULL,
                    success_rate = 1 - (1 - a.success_rate) * power(1 - {SUCCESS_ALPHA}, v.n),
                    avg_latency_ms = CASE WHEN v.latency IS NULL THEN a.avg_latency_ms
                                          WHEN a.avg_latency_ms IS NULL THEN v.latency
                                          ELSE a.avg_latency_ms * power(1 - {LATENCY_ALPHA}, v.n)
                                               + v.latency * (1 - power(1 - {LATENCY_ALPHA}, v.n)) END,
                    updated_at = %s
                FROM unnest(%s::uuid[], %s::int[], %s::float8[]) AS v(agent_id, n, latency)
                WHERE a.agent_id = v.agent_id
                RETURNING a.{_RETURNING.replace(", ", ", a.")}""",
            [now, agent_ids, counts, means],
        )
        _publish(cursor.fetchall(), now)


def note_accepted(agent_id, *, now, latency_ms):
    """The agent took the task (202): it is healthy, but the slot stays held until it reports."""
    with prepared_cursor() as cursor:
        cursor.execute(
            f"""UPDATE agents_agent SET consecutive_failures = 0,
                    circuit_state = 'closed', circuit_opened_at = NULL, circuit_retry_at = NULL,
                    avg_latency_ms = CASE WHEN avg_latency_ms IS NULL THEN %(latency)s::float
                        ELSE avg_latency_ms * (1 - {LATENCY_ALPHA})
                             + %(latency)s::float * {LATENCY_ALPHA} END,
                    updated_at = %(now)s
                WHERE agent_id = %(agent)s RETURNING {_RETURNING}""",
            {"agent": agent_id, "now": now, "latency": latency_ms},
        )
        _publish(cursor.fetchall(), now)


def retire(agent_id, *, now, reason):
    """The agent said 410 Gone: it gets nothing new until an operator resumes it."""
    from agents import changes

    changes.apply(
        where="agent_id = %(agent)s AND NOT (status = 'draining' AND drained_by_operator)",
        assignments="status = 'draining', drained_by_operator = true",
        params={"agent": agent_id},
        reason=reason,
        now=now,
    )
