"""What an agent's changes publish (docs/events.md has the schemas): registration, every status change,
every change of its circuit breaker's state, and unregistration. Not its load or heartbeats: those change
every second and say nothing another service acts on.

The status and circuit events are more CTEs of the statement that makes the change (changes.py,
capacity.py); they number each event with the outbox's per-entity counter (writer.next_sequence_cte),
taken in the same statement, which already holds the agent's row locked.
"""

from orchestrator_project.outbox import writer

AGGREGATE = "agent"
REGISTERED = writer.event_type("agent.registered")
STATUS_CHANGED = writer.event_type("agent.status_changed")
CIRCUIT_CHANGED = writer.event_type("agent.circuit_changed")
UNREGISTERED = writer.event_type("agent.unregistered")


def _published(source, event, payload, at):
    """CTEs that number and insert one event per row of `source` (which has aggregateid)."""
    numbered = writer.next_sequence_cte(f"{source}_numbered", aggregatetype=AGGREGATE, source=source)
    return f""", {numbered}, {source}_published AS (
            {writer.INSERT}
            SELECT '{AGGREGATE}', c.aggregateid, '{event}', {payload}, n.sequence, {at}
            FROM {source} c JOIN {source}_numbered n USING (aggregateid)
        )"""


def status_changed_ctes(moved):
    """For changes.apply: an event per agent in `moved` whose status moved. %(reason)s is the change's."""
    return f""", status_moved AS (
            SELECT agent_id AS aggregateid, name, old_status, status, at FROM {moved}
            WHERE status <> old_status
        ){
        _published(
            "status_moved",
            STATUS_CHANGED,
            "jsonb_build_object('agent_id', c.aggregateid, 'name', c.name, 'old_status', c.old_status,"
            " 'status', c.status, 'reason', %(reason)s::text, 'at', c.at)",
            "c.at",
        )
    }"""


def circuit_changed_ctes(moved, *, at):
    """For capacity.py: an event per agent in `moved` (agent_id, name, circuit_state, old_circuit,
    consecutive_failures, circuit_retry_at) whose circuit state moved; `at` is the change's time (SQL)."""
    return f""", circuit_moved AS (
            SELECT agent_id AS aggregateid, name, old_circuit, circuit_state, consecutive_failures,
                   circuit_retry_at
            FROM {moved} WHERE circuit_state <> old_circuit
        ){
        _published(
            "circuit_moved",
            CIRCUIT_CHANGED,
            "jsonb_build_object('agent_id', c.aggregateid, 'name', c.name, 'old_state', c.old_circuit,"
            " 'state', c.circuit_state, 'consecutive_failures', c.consecutive_failures,"
            f" 'retry_at', c.circuit_retry_at, 'at', {at})",
            at,
        )
    }"""


def registered(agent, *, at):
    _append(
        agent,
        REGISTERED,
        at,
        type=agent.type,
        capabilities=list(agent.capabilities),
        status=agent.status,
        max_concurrency=agent.max_concurrency,
    )


def unregistered(agent, *, at):
    _append(agent, UNREGISTERED, at, old_status=agent.status)
    writer.forget(aggregatetype=AGGREGATE, aggregateid=agent.agent_id)


def _append(agent, event, at, **fields):
    payload = {"agent_id": str(agent.agent_id), "name": agent.name, **fields, "at": at.isoformat()}
    writer.append(aggregatetype=AGGREGATE, aggregateid=agent.agent_id, event=event, payload=payload, at=at)
