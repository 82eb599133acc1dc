"""Whether an agent can take work now: the one rule, written here in SQL and in Python.

An agent takes a new task when it is online (not offline, draining or unhealthy) and its circuit
breaker lets a call through:

| circuit   | takes work when                                   | how many                          |
| --------- | ------------------------------------------------- | --------------------------------- |
| closed    | it has a free slot (current_load < max)           | up to its free slots              |
| open      | its retry time has come and nothing is in flight  | one: the probe (flips half-open)  |
| half_open | never: its probe is out                           | none                              |

Dispatch rounds ask in SQL (`ELIGIBLE_SQL`), an operator's explicit assignment asks in Python
(`refusal`); tests/agents/test_eligibility.py holds the two equal over every combination.

A different, looser question is whether a task *could* be served soon (`serves_soon`): the agent is
online and not tripped for longer than one recovery period. A full agent serves soon; a draining one
does not. `POST /tasks/{id}/execute` asks it before it waits.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from .models import Agent, AgentStatus, CircuitState

_ONLINE = f"status = '{AgentStatus.ONLINE}'"
# The closed branch, for `slots` more tasks (an SQL expression: a literal or a per-row value).
_CLOSED_WITH_ROOM = "circuit_state = '{closed}' AND current_load + {slots} <= max_concurrency"
# The open branch: the single probe. `%(now)s` is the round's clock.
# A tripped circuit with nothing in flight: its probe goes out once its retry time has come.
PROBE_WAITING_SQL = f"circuit_state = '{CircuitState.OPEN}' AND current_load = 0"
PROBE_DUE_SQL = f"{PROBE_WAITING_SQL} AND circuit_retry_at <= %(now)s"


def closed_with_room_sql(slots="1"):
    return _CLOSED_WITH_ROOM.format(closed=CircuitState.CLOSED, slots=slots)


ONLINE_SQL = _ONLINE
ELIGIBLE_SQL = f"{ONLINE_SQL} AND (({closed_with_room_sql()}) OR ({PROBE_DUE_SQL}))"


def is_probe_state(circuit_state):
    """Whether a task sent to an eligible agent in this circuit state is the circuit's single probe."""
    return circuit_state == CircuitState.OPEN


def refusal(agent, now, required_capabilities=()):
    """Why `agent` cannot take a task needing `required_capabilities` now, or "" if it can."""
    missing = sorted(set(required_capabilities) - set(agent.capabilities))
    if missing:
        return f"agent {agent.agent_id} lacks required capabilities: {', '.join(missing)}"
    if agent.status != AgentStatus.ONLINE:
        return f"agent {agent.agent_id} is {agent.status}"
    if agent.circuit_state == CircuitState.CLOSED:
        if agent.current_load >= agent.max_concurrency:
            return f"agent {agent.agent_id} is full ({agent.current_load}/{agent.max_concurrency} tasks)"
        return ""
    if agent.circuit_state == CircuitState.OPEN:
        if agent.circuit_retry_at is not None and agent.circuit_retry_at <= now:
            if agent.current_load == 0:
                return ""
            return f"agent {agent.agent_id} has its circuit breaker open and tasks still in flight"
        return f"agent {agent.agent_id} has its circuit breaker open until {agent.circuit_retry_at}"
    return f"agent {agent.agent_id} has its circuit breaker half-open (its probe task is out)"


def serves_soon(now):
    """Q of agents that could take work now or within one recovery period (online, not tripped long)."""
    horizon = now + timedelta(seconds=settings.CIRCUIT_BREAKER_RECOVERY_TIMEOUT)
    return Q(status=AgentStatus.ONLINE) & (
        Q(circuit_state__in=[CircuitState.CLOSED, CircuitState.HALF_OPEN]) | Q(circuit_retry_at__lte=horizon)
    )


def capable_agents_exist(required_capabilities, now):
    """Whether some agent offering every capability serves soon (see the module docstring)."""
    return Agent.objects.filter(serves_soon(now), capabilities__contains=list(required_capabilities)).exists()
