"""Agent status changes: the one place an agent's status moves, so every move leaves a row.

A change is a single SQL statement. A CTE locks the selected agents and remembers their old status,
the UPDATE applies the caller's SET clause, and an INSERT writes one AgentStatusChange row for each
agent whose status really moved, in the same statement, with its outbox event (outbox.py). Callers
supply only WHERE and SET; the history row, the published event, the live event, the notification and
the dispatch wake-up cannot be forgotten.

SET expressions must qualify columns with `a.` (the agent being updated): the CTE that holds the
old status also has a `status` column, so an unqualified name would be ambiguous.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import transaction

from orchestrator_project import live
from orchestrator_project.live.messages import agent_change
from orchestrator_project.outbox import writer
from orchestrator_project.prepared import prepared_cursor

from . import outbox, signals
from .models import Agent, AgentStatus, AgentStatusChange

# The database's clock, unless a caller (a sweep, a test) passes `now`: liveness never trusts an agent's
# clock, and one clock for all web and worker processes avoids skew between them. statement_timestamp()
# rather than now(): a long transaction must not stamp heartbeats with the time it began.
CLOCK = "COALESCE(%(now)s::timestamptz, statement_timestamp())"


@dataclass(frozen=True)
class Change:
    agent_id: UUID
    name: str
    old_status: str
    status: str
    current_load: int
    max_concurrency: int
    circuit_state: str
    heartbeat_timeout: int
    heartbeat_expires_at: datetime | None
    at: datetime
    reason: str

    @property
    def moved(self):
        return self.old_status != self.status

    def message(self):
        """The agent as it is after the change, as live clients see it."""
        return agent_change(
            agent_id=self.agent_id,
            name=self.name,
            status=self.status,
            current_load=self.current_load,
            max_concurrency=self.max_concurrency,
            circuit_state=self.circuit_state,
            at=self.at,
        )


def apply(
    *, where, assignments, params=None, reason, now=None, skip_locked=False, order_limit="", durable=True
):
    """Run `UPDATE agents SET <assignments> WHERE <where>` and record every status that moved.

    Returns one Change per updated agent (moved or not). The statement is atomic by itself; inside a
    transaction the announcements wait for its commit (transaction.on_commit), in autocommit they go out
    at once.
    """
    agents, history = Agent._meta.db_table, AgentStatusChange._meta.db_table
    lock = "FOR UPDATE SKIP LOCKED" if skip_locked else "FOR UPDATE"
    # Several agents are locked in id order, the order task outcomes and dispatch rounds lock them in:
    # a probe round locking them in scan order deadlocked against those (see tests/chaos).
    order_limit = order_limit or "ORDER BY agent_id"
    # Not durable: the commit does not wait for the WAL flush (set for this transaction only). For a
    # heartbeat in autocommit, a crash can lose the last fraction of a second of them, which the next
    # heartbeat restores; waiting on the disk was most of a heartbeat's time.
    relaxed = "" if durable else ", (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"
    published = outbox.status_changed_ctes("moved") if writer.enabled() else ""
    sql = f"""
        WITH old AS (
            SELECT agent_id, status{relaxed} FROM {agents} WHERE {where} {order_limit} {lock}
        ), moved AS (
            UPDATE {agents} a SET {assignments}, updated_at = {CLOCK}
            FROM old WHERE a.agent_id = old.agent_id
            RETURNING a.agent_id, a.name, old.status AS old_status, a.status, a.current_load,
                      a.max_concurrency, a.circuit_state, a.heartbeat_timeout, a.heartbeat_expires_at,
                      {CLOCK} AS at
        ), recorded AS (
            INSERT INTO {history} (agent_id, old_status, new_status, reason, created_at)
            SELECT agent_id, old_status, status, %(reason)s, at FROM moved WHERE status <> old_status
        ){published}
        SELECT agent_id, name, old_status, status, current_load, max_concurrency, circuit_state,
               heartbeat_timeout, heartbeat_expires_at, at
        FROM moved
    """
    with prepared_cursor() as cursor:  # each caller's text is fixed; heartbeats run it all the time
        cursor.execute(sql, {**(params or {}), "now": now, "reason": reason[:500]})
        changes = [Change(*row, reason=reason) for row in cursor.fetchall()]
    announce(changes)
    return changes


def record_registration(agent, *, at, reason):
    """A new agent's first status: a row with no old status, announced like any other change."""
    AgentStatusChange.objects.create(agent=agent, old_status="", new_status=agent.status, reason=reason)
    outbox.registered(agent, at=at)
    change = Change(
        agent.agent_id,
        agent.name,
        "",
        agent.status,
        agent.current_load,
        agent.max_concurrency,
        agent.circuit_state,
        agent.heartbeat_timeout,
        agent.heartbeat_expires_at,
        at,
        reason,
    )
    announce([change])
    return change


def announce(changes):
    """Tell the rest of the system about the moved statuses: live clients after commit, and the
    receivers of signals.status_changed (the notifier) and signals.capacity_freed (dispatch)."""
    moved = [change for change in changes if change.moved]
    if not moved:
        return
    messages = [change.message() for change in moved]
    transaction.on_commit(lambda: live.publish_agent_changes(messages))
    signals.status_changed.send(sender=Agent, changes=moved)
    back = [change.agent_id for change in moved if change.status == AgentStatus.ONLINE]
    if back:
        signals.capacity_freed.send(sender=Agent, agent_ids=back)
