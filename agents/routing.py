"""What the adaptive strategy learns of each agent per capability, and what it expects (docs/routing.md).

Per (agent, routing key) the table `agents_agentroute` keeps:

- `latency_ms`: a peak-sensitive moving average of call latency. A sample above it replaces it at once
  (a slow call is believed immediately); one below moves it by 1 - keep, where keep = min(exp(-dt/tau),
  1 - ROUTING_LATENCY_ALPHA) and dt is the time since the last sample (so it forgets with time, and every
  sample counts for at least alpha). A failed call (a timeout, a 5xx, a 429, a 503, a broken answer) is
  a sample of its latency plus ROUTING_FAILURE_PENALTY_MS: an agent that fails fast never looks fast.
- `success_rate`: the same time-decayed average of 1 (success) and 0 (failure), alpha ROUTING_SUCCESS_ALPHA.

The state changes in the statement that gives the call's slot back (capacity.py folds `route_upsert_sql`
into it), so learning costs no round trip; `fold` is the same arithmetic in Python (the simulation and
the tests, which hold the two equal). Reading it, `estimate` lets an idle agent's figures drift back to
the capability's median with the same tau (so an agent shunned after a bad spell is tried again), and
`expected_cost` turns them into the expected time to a successful completion given its load.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from orchestrator_project.pg_arrays import array_literal

from .models import AgentRoute

# A task that names no capability is learned under this key (as the metrics count its queue).
ANY_CAPABILITY = "*"
# Below this success rate the expected cost stops growing: an agent that never succeeds is still costed.
SUCCESS_FLOOR = 0.02


def route_key(required_capabilities):
    """A task's routing key: its capabilities, sorted, joined by commas; "*" when it names none."""
    return ",".join(sorted(set(required_capabilities))) or ANY_CAPABILITY


@dataclass(frozen=True)
class RouteState:
    latency_ms: float | None
    success_rate: float
    samples: int
    updated_at: datetime


@dataclass(frozen=True)
class Sample:
    """The outcome of `count` calls of one agent on one routing key (count > 1 only for successes)."""

    agent_id: object
    key: str
    latency_ms: float | None
    ok: bool
    count: int = 1


def sample_value(latency_ms, ok):
    """The latency a call counts for: failures pay the penalty on top (None: no latency to learn)."""
    if ok:
        return latency_ms
    return (latency_ms or 0.0) + settings.ROUTING_FAILURE_PENALTY_MS


def _keep(elapsed_seconds, alpha, count):
    per_sample = min(math.exp(-max(elapsed_seconds, 0.0) / settings.ROUTING_DECAY_SECONDS), 1 - alpha)
    return per_sample**count


def fold(state, sample, now):
    """The state after `sample` (a Sample) at `now`; `state` None for an agent never seen on this key."""
    value = sample_value(sample.latency_ms, sample.ok)
    if state is None:
        fresh_success = 1.0 if sample.ok else 1.0 - settings.ROUTING_SUCCESS_ALPHA
        return RouteState(value, fresh_success, sample.count, now)
    elapsed = (now - state.updated_at).total_seconds()
    keep_latency = _keep(elapsed, settings.ROUTING_LATENCY_ALPHA, sample.count)
    keep_success = _keep(elapsed, settings.ROUTING_SUCCESS_ALPHA, sample.count)
    if value is None:
        latency = state.latency_ms
    elif state.latency_ms is None or (sample.ok and value > state.latency_ms):
        latency = value
    else:
        latency = state.latency_ms * keep_latency + value * (1 - keep_latency)
    success = state.success_rate * keep_success + (1.0 if sample.ok else 0.0) * (1 - keep_success)
    return RouteState(latency, success, state.samples + sample.count, max(state.updated_at, now))


def estimate(state, *, median_latency, median_success, now):
    """(latency, success rate) expected of an agent now: what it learned, drifted back towards the
    capability's median for as long as it has been idle; the median itself for an agent never seen."""
    if state is None or state.latency_ms is None:
        return median_latency, median_success
    idle = max((now - state.updated_at).total_seconds(), 0.0)
    pull = math.exp(-idle / settings.ROUTING_DECAY_SECONDS)
    latency = (
        state.latency_ms
        if median_latency is None
        else median_latency + (state.latency_ms - median_latency) * pull
    )
    success = median_success + (state.success_rate - median_success) * pull
    return latency, success


def expected_cost(latency_ms, success_rate, load, max_concurrency):
    """Expected time to a successful completion (ms): attempts needed (1 / success rate) times what each
    costs (the latency average already carries failures' penalty), stretched by the share of the agent's
    slots already busy (an agent slows down, and has less left, as it fills)."""
    return latency_ms / max(success_rate, SUCCESS_FLOOR) * (1 + load / max_concurrency)


def median(values):
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# --- SQL: the same fold, as a CTE of the statement that releases the slots ------------------------------

_TABLE = AgentRoute._meta.db_table


def _keep_sql(alpha_param):
    elapsed = "GREATEST(extract(epoch FROM (excluded.updated_at - r.updated_at))::float8, 0)"
    return (
        f"power(LEAST(exp(-{elapsed} / %(r_tau)s::float8), 1 - %({alpha_param})s::float8), excluded.samples)"
    )


# The proposed row is the state a first sample leaves (fold(None, ...)): its latency is the sample's
# value, its success rate 1 for successes and 1 - alpha for a failure, so DO UPDATE reads the sample
# back from it (ok: success_rate = 1).
_UPSERT = f"""
    INSERT INTO {_TABLE} AS r (agent_id, capability, latency_ms, success_rate, samples, updated_at)
    SELECT s.agent_id, s.capability,
           CASE WHEN s.ok THEN s.latency ELSE COALESCE(s.latency, 0) + %(r_penalty)s::float8 END,
           CASE WHEN s.ok THEN 1.0 ELSE 1.0 - %(r_salpha)s::float8 END,
           s.n, %(now)s
    FROM unnest(%(r_agents)s::uuid[], %(r_keys)s::varchar[], %(r_counts)s::int[], %(r_latency)s::float8[],
                %(r_ok)s::bool[]) AS s(agent_id, capability, n, latency, ok)
    JOIN {{released}} AS released ON released.agent_id = s.agent_id
    ON CONFLICT (agent_id, capability) DO UPDATE SET
        latency_ms = CASE
            WHEN excluded.latency_ms IS NULL THEN r.latency_ms
            WHEN r.latency_ms IS NULL OR (excluded.success_rate = 1 AND excluded.latency_ms > r.latency_ms)
                THEN excluded.latency_ms
            ELSE r.latency_ms * {_keep_sql("r_lalpha")} + excluded.latency_ms * (1 - {_keep_sql("r_lalpha")})
        END,
        success_rate = r.success_rate * {_keep_sql("r_salpha")}
            + (CASE WHEN excluded.success_rate = 1 THEN 1.0 ELSE 0.0 END) * (1 - {_keep_sql("r_salpha")}),
        samples = r.samples + excluded.samples,
        updated_at = GREATEST(r.updated_at, excluded.updated_at)"""


def route_upsert_sql(released):
    """The CTE body folding %(r_*)s samples into the table, for the agents the CTE `released` returns
    (only agents that still exist, locked by that statement: no foreign key can fail)."""
    return _UPSERT.format(released=released)


def route_params(samples):
    """The statement parameters of `route_upsert_sql` for `samples` (merged per agent and key: one
    upsert may touch a row once)."""
    merged = {}
    for sample in samples:
        key = (str(sample.agent_id), sample.key, sample.ok)
        count, total, timed = merged.get(key, (0, 0.0, 0))
        timed_add = sample.count if sample.latency_ms is not None else 0
        merged[key] = (
            count + sample.count,
            total + (sample.latency_ms or 0.0) * timed_add,
            timed + timed_add,
        )
    # A success and a failure of the same agent and key in one batch: the failure wins the row (rare:
    # batches of outcomes are folded by verdict, failures one at a time).
    rows = {}
    for (agent, key, ok), (count, total, timed) in sorted(merged.items(), key=lambda item: not item[0][2]):
        rows[agent, key] = (count, total / timed if timed else None, ok)
    return {
        "r_agents": array_literal([agent for agent, _ in rows]),
        "r_keys": array_literal([key for _, key in rows]),
        "r_counts": array_literal([row[0] for row in rows.values()]),
        "r_latency": array_literal([row[1] for row in rows.values()]),
        "r_ok": array_literal([row[2] for row in rows.values()]),
        "r_tau": float(settings.ROUTING_DECAY_SECONDS),
        "r_lalpha": settings.ROUTING_LATENCY_ALPHA,
        "r_salpha": settings.ROUTING_SUCCESS_ALPHA,
        "r_penalty": settings.ROUTING_FAILURE_PENALTY_MS,
    }
