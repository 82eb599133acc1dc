"""The liveness sweep: agents whose heartbeat deadline has passed go offline and lose their work."""

from django.db import transaction

from . import changes
from .locks import try_sweep_lock
from .models import AgentStatus
from .services import OFFLINE_HEARTBEAT_EXPIRED, hand_back

# Bounds one sweep's transaction; a bigger backlog is finished by the next beat a few seconds later.
SWEEP_BATCH = 500


def expire_stale_agents(now=None, *, batch=SWEEP_BATCH):
    """Mark offline every agent whose heartbeat expired at or before `now` (default: the database's clock).

    Returns the ids of the agents it took offline. Safe to run concurrently: the advisory lock lets one
    sweep through, and SKIP LOCKED plus the status re-check of FOR UPDATE make even two sweeps that both
    got through record each agent's change exactly once.
    """
    with transaction.atomic():
        if not try_sweep_lock("agents.expire_stale_agents"):
            return []
        # Reads the agents table (no index on heartbeat_expires_at: heartbeats stay HOT updates, Agent.Meta):
        # a few milliseconds for ten thousand agents, once per sweep.
        expired = changes.apply(
            where=f"status <> '{AgentStatus.OFFLINE}' AND heartbeat_expires_at <= {changes.CLOCK}",
            order_limit="ORDER BY heartbeat_expires_at LIMIT %(batch)s",
            assignments=f"status = '{AgentStatus.OFFLINE}'",
            params={"batch": batch},
            reason=OFFLINE_HEARTBEAT_EXPIRED,
            now=now,
            skip_locked=True,
        )
        agent_ids = [change.agent_id for change in expired]
        hand_back(agent_ids=agent_ids, reason=OFFLINE_HEARTBEAT_EXPIRED)
    return agent_ids
