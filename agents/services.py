"""Agent workflows: registration, heartbeats, operator verbs and unregistration.

Status rules live in the SQL below (one statement per change, see changes.py); in short:
- `unhealthy` is left only by a successful health probe, whatever the agent says;
- an operator's drain (`drained_by_operator`) sticks until an operator resumes;
- a heartbeat brings an `offline` agent back `online`, which wakes dispatch.
"""

import json

from django.db import IntegrityError, connection, transaction

from orchestrator_project import live
from orchestrator_project.errors import InvalidInput, RateLimited
from orchestrator_project.live.messages import AGENT_CHANGE_COLUMNS, agent_change, agent_change_from_row

from . import capacity, changes, outbox, pacing, signals
from .changes import CLOCK
from .discovery import DiscoveryFailed, discover_capabilities
from .models import Agent, AgentStatus, CircuitState

OFFLINE_HEARTBEAT_EXPIRED = "agent offline: heartbeat expired"

# Shared by heartbeats, registration and probes that stand in for heartbeats.
_REFRESH_HEARTBEAT = f"""last_heartbeat = {CLOCK},
    heartbeat_expires_at = {CLOCK} + make_interval(secs => a.heartbeat_timeout)"""

_HEARTBEAT = f"""{_REFRESH_HEARTBEAT},
    reported_load = COALESCE(%(load)s::integer, a.reported_load),
    last_metrics = COALESCE(%(metrics)s::jsonb, a.last_metrics),
    probe_failures = CASE WHEN a.status = '{AgentStatus.OFFLINE}' THEN 0 ELSE a.probe_failures END,
    status = CASE
        WHEN a.status = '{AgentStatus.UNHEALTHY}' THEN '{AgentStatus.UNHEALTHY}'
        WHEN a.drained_by_operator THEN '{AgentStatus.DRAINING}'
        WHEN %(requested)s::text IS NOT NULL THEN %(requested)s::text
        WHEN a.status = '{AgentStatus.OFFLINE}' THEN '{AgentStatus.ONLINE}'
        ELSE a.status
    END"""


def hand_back(*, agent_ids, reason):
    """Tell whoever gave the agents work that they lost it (signals.work_lost), in the caller's
    transaction: the task engine hands it back to dispatch."""
    if agent_ids:
        signals.work_lost.send(sender=Agent, agent_ids=list(agent_ids), reason=reason)


def heartbeat(*, agent_id, status=None, reported_load=None, metrics=None, reason="heartbeat", paced=False):
    """Record a heartbeat on the database's clock. Returns the Change, or None if there is no such agent.

    One statement: this runs for every agent every few seconds. `paced` (the API) applies the heartbeat
    rate limit in that same statement (pacing.py) and raises RateLimited when the agent is over it.
    """
    params = {
        "agent": agent_id,
        "requested": status,
        "load": reported_load,
        "metrics": None if metrics is None else json.dumps(metrics),
    }
    where, assignments = "agent_id = %(agent)s", _HEARTBEAT
    pace = pacing.heartbeat_pace() if paced else None
    if pace is not None:
        where, assignments = f"{where} AND {pacing.ALLOWED}", f"{assignments}, {pacing.ADVANCE}"
        params.update(pace)
    # No transaction block: the statement is atomic by itself, and BEGIN/COMMIT would double the round
    # trips of the busiest write path. The announcements then go out right after it. Not durable: see
    # changes.apply; the heartbeat that follows repeats everything this one says.
    for _ in range(2):
        found = changes.apply(
            where=where, assignments=assignments, params=params, reason=reason, durable=False
        )
        if found:
            return found[0]
        if pace is None:
            return None
        # Refused: by the limit, or because there is no such agent (rare paths, so a second statement).
        with connection.cursor() as cursor:
            cursor.execute(pacing.WAIT, params)
            row = cursor.fetchone()
        if row is None:
            return None
        wait = float(row[0])
        if wait > 0:
            break
        # The budget came back between the two statements: try once more.
    raise RateLimited(wait=max(wait, 0.001))


def _discover(endpoint):
    try:
        return discover_capabilities(endpoint)
    except DiscoveryFailed as exc:
        raise InvalidInput(
            {
                "capabilities": [
                    f"Capabilities were not given and could not be discovered ({exc}); list them explicitly."
                ]
            }
        )


def register_agent(
    *,
    endpoint,
    type,
    name,
    capabilities=None,
    metadata=None,
    max_concurrency=None,
    weight=None,
    heartbeat_timeout=None,
    probe_heartbeats=None,
    rotate_credentials=True,
):
    """Create the agent, or update the one already registered at `endpoint`.

    Returns (agent, created, token); `token` is the raw credential, None when it was not rotated.
    """
    if capabilities is None:
        # Before the transaction: no row stays locked while we wait for the agent's card.
        capabilities = _discover(endpoint)
    fields = {"type": type, "name": name, "capabilities": capabilities}
    optional = {
        "metadata": metadata,
        "max_concurrency": max_concurrency,
        "weight": weight,
        "heartbeat_timeout": heartbeat_timeout,
        "probe_heartbeats": probe_heartbeats,
    }
    fields.update({key: value for key, value in optional.items() if value is not None})

    with transaction.atomic():
        agent = Agent.objects.select_for_update().filter(endpoint=endpoint).first()
        created = False
        if agent is None:
            agent = Agent(endpoint=endpoint, **fields)
            token = agent.issue_credentials()
            try:
                with transaction.atomic():
                    agent.save(force_insert=True)
                created = True
            except IntegrityError:
                # A concurrent registration of the same endpoint won the insert: update that one.
                agent = Agent.objects.select_for_update().get(endpoint=endpoint)
        if not created:
            for key, value in fields.items():
                setattr(agent, key, value)
            token = agent.issue_credentials() if rotate_credentials else None
            agent.save()
        # Registering counts as a heartbeat: the liveness clock starts now, on the database's clock.
        change = heartbeat(agent_id=agent.agent_id, reason="registered" if created else "re-registered")
        agent.refresh_from_db()
        if created:
            changes.record_registration(agent, at=change.at, reason="registered")
        else:
            # Its settings as they are now: a consumer that keeps the fleet from these events sees a new
            # name, capabilities or limit (the status change, if any, has its own event).
            outbox.registered(agent, at=change.at)
            # A larger limit or another capability may place tasks that waited: wake dispatch on commit
            # (a dispatcher that found the fleet full skips creations until capacity rings).
            signals.capacity_freed.send(sender=Agent, agent_ids=[agent.agent_id])
    return agent, created, token


def drain(*, agent_id, reason="drained by operator"):
    """Nothing new goes to the agent; what it runs finishes. Sticks until `resume`."""
    with transaction.atomic():
        found = changes.apply(
            where="agent_id = %(agent)s",
            params={"agent": agent_id},
            reason=reason,
            # An offline or unhealthy agent keeps that status; the flag makes it come back draining.
            assignments=f"""drained_by_operator = true,
                status = CASE WHEN a.status IN ('{AgentStatus.ONLINE}', '{AgentStatus.DRAINING}')
                              THEN '{AgentStatus.DRAINING}' ELSE a.status END""",
        )
    return found[0] if found else None


def resume(*, agent_id, reason="resumed by operator"):
    """Undo a drain: online if the agent is still heartbeating, offline (its work handed back) if not."""
    with transaction.atomic():
        found = changes.apply(
            where="agent_id = %(agent)s",
            params={"agent": agent_id},
            reason=reason,
            assignments=f"""drained_by_operator = false,
                status = CASE
                    WHEN a.status <> '{AgentStatus.DRAINING}' THEN a.status
                    WHEN a.heartbeat_expires_at > {CLOCK} THEN '{AgentStatus.ONLINE}'
                    ELSE '{AgentStatus.OFFLINE}'
                END""",
        )
        # Offline agents lose their work; an expired draining agent would otherwise keep it until the
        # sweep, which only looks at agents that are not offline yet.
        hand_back(
            agent_ids=[c.agent_id for c in found if c.moved and c.status == AgentStatus.OFFLINE],
            reason=OFFLINE_HEARTBEAT_EXPIRED,
        )
    return found[0] if found else None


def mark_offline(*, agent_ids, reason):
    """An operator takes agents offline now; their work is handed back. A heartbeat brings them back."""
    with transaction.atomic():
        found = changes.apply(
            where=f"agent_id = ANY(%(agents)s) AND status <> '{AgentStatus.OFFLINE}'",
            params={"agents": list(agent_ids)},
            assignments=f"status = '{AgentStatus.OFFLINE}'",
            reason=reason,
        )
        hand_back(agent_ids=[c.agent_id for c in found], reason=reason)
    return found


def reset_circuit(*, agent_ids):
    """Close the agents' circuit breakers by hand (the dispatch engine maintains them otherwise)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                capacity.circuit_update(
                    lock="agent_id = ANY(%(agents)s::uuid[])",
                    sets="""circuit_state = %(closed)s, consecutive_failures = 0, circuit_opened_at = NULL,
                        circuit_retry_at = NULL, updated_at = statement_timestamp()""",
                    returning=f"{', '.join(AGENT_CHANGE_COLUMNS)}, statement_timestamp()",
                    at="statement_timestamp()",
                ),
                {"agents": list(agent_ids), "closed": CircuitState.CLOSED},
            )
            rows = cursor.fetchall()
        if rows:
            messages = [agent_change_from_row(row[:-1], row[-1]) for row in rows]
            transaction.on_commit(lambda: live.publish_agent_changes(messages))
            signals.capacity_freed.send(sender=Agent, agent_ids=[row[0] for row in rows])
    return len(rows)


def unregister_agent(*, agent_id):
    """Delete the agent after handing its work back, in one transaction. False if it did not exist."""
    with transaction.atomic():
        # Locked first, so a heartbeat or dispatch cannot slip in between the hand-back and the delete.
        agent = Agent.objects.select_for_update().filter(pk=agent_id).first()
        if agent is None:
            return False
        hand_back(agent_ids=[agent.agent_id], reason="agent unregistered")
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            at = cursor.fetchone()[0]
        outbox.unregistered(agent, at=at)  # while it still has its id
        agent.delete()
        message = agent_change(
            agent_id=agent_id,
            name=agent.name,
            status="unregistered",
            current_load=0,
            max_concurrency=agent.max_concurrency,
            circuit_state=agent.circuit_state,
            at=at,
        )
        transaction.on_commit(lambda: live.publish_agent_changes([message]))
        signals.unregistered.send(
            sender=Agent, agent_id=agent_id, name=agent.name, old_status=agent.status, at=at
        )
    return True


def capability_counts():
    """Every capability, with how many agents offer it and how many of those are online. One query."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT capability, count(*) FILTER (WHERE status = %(online)s), count(*)
                FROM {Agent._meta.db_table}, unnest(capabilities) AS capability
                GROUP BY capability ORDER BY capability""",
            {"online": AgentStatus.ONLINE},
        )
        return [
            {"capability": cap, "online_agents": online, "total_agents": total}
            for cap, online, total in cursor.fetchall()
        ]
