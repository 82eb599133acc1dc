"""Active health probes: `GET {endpoint}/health` on agents that may take work.

AGENT_PROBE_FAILURE_THRESHOLD failures in a row make an online agent `unhealthy` (not routable); the
next successful probe brings it back. Agents are claimed by a guarded UPDATE of `last_probe_at` and the
calls happen outside any transaction: no row stays locked while an agent takes its time to answer.
"""

import asyncio
import logging

from django.conf import settings
from django.db import connection, transaction

from orchestrator_project import egress

from . import changes
from .changes import CLOCK
from .locks import try_sweep_lock
from .models import Agent, AgentStatus

HEALTH_PATH = "/health"
HEALTH_MAX_BYTES = 64 * 1024

logger = logging.getLogger(__name__)

_SUCCEEDED = f"""probe_failures = 0,
    last_heartbeat = CASE WHEN a.probe_heartbeats THEN {CLOCK} ELSE a.last_heartbeat END,
    heartbeat_expires_at = CASE WHEN a.probe_heartbeats
        THEN {CLOCK} + make_interval(secs => a.heartbeat_timeout) ELSE a.heartbeat_expires_at END,
    status = CASE
        WHEN a.status = '{AgentStatus.UNHEALTHY}'
             OR (a.status = '{AgentStatus.OFFLINE}' AND a.probe_heartbeats)
            THEN CASE WHEN a.drained_by_operator THEN '{AgentStatus.DRAINING}'
                      ELSE '{AgentStatus.ONLINE}' END
        ELSE a.status
    END"""

# Only an online agent turns unhealthy: one that went offline or was drained meanwhile keeps that status.
_FAILED = f"""probe_failures = a.probe_failures + 1,
    status = CASE WHEN a.status = '{AgentStatus.ONLINE}' AND a.probe_failures + 1 >= %(threshold)s
                  THEN '{AgentStatus.UNHEALTHY}'
        ELSE a.status END"""


def _claim(now):
    """Agents due for a probe, marked as probed so that a concurrent run skips them."""
    with transaction.atomic():
        if not try_sweep_lock("agents.probe_agents"):
            return []
        with connection.cursor() as cursor:
            # Half the interval, not all of it: a beat that fires a hair early must not skip a round.
            # No index: the agent table is small and this runs every AGENT_PROBE_INTERVAL seconds.
            # SKIP LOCKED, in id order: an agent whose row a dispatch round or a batch of outcomes holds
            # is probed next round; locking rows in scan order deadlocked against those (tests/chaos).
            cursor.execute(
                f"""WITH due AS (
                        SELECT agent_id FROM {Agent._meta.db_table}
                        WHERE (status IN ('{AgentStatus.ONLINE}', '{AgentStatus.UNHEALTHY}')
                               OR (status = '{AgentStatus.OFFLINE}' AND probe_heartbeats))
                          AND (last_probe_at IS NULL
                               OR last_probe_at <= {CLOCK} - make_interval(secs => %(gap)s))
                        ORDER BY agent_id FOR UPDATE SKIP LOCKED
                    )
                    UPDATE {Agent._meta.db_table} a SET last_probe_at = {CLOCK}
                    FROM due WHERE a.agent_id = due.agent_id
                    RETURNING a.agent_id, a.endpoint""",
                {"now": now, "gap": settings.AGENT_PROBE_INTERVAL / 2},
            )
            return cursor.fetchall()


async def _probe_one(client, semaphore, endpoint):
    timeout = settings.AGENT_PROBE_TIMEOUT
    async with semaphore:
        try:
            response = await asyncio.wait_for(
                egress.request(
                    client, "GET", endpoint + HEALTH_PATH, timeout=timeout, max_bytes=HEALTH_MAX_BYTES
                ),
                timeout,
            )
        except Exception as exc:  # refused, unreachable, slow, oversized: all the same to a probe
            logger.info("health probe of %s failed: %s", endpoint, exc.__class__.__name__)
            return False
    return 200 <= response.status_code < 300


async def _probe_all(targets):
    width = max(1, min(len(targets), settings.AGENT_CALL_CONCURRENCY))
    semaphore = asyncio.Semaphore(width)
    async with egress.new_async_client() as client:
        return await asyncio.gather(*(_probe_one(client, semaphore, endpoint) for _, endpoint in targets))


def probe_agents(now=None):
    """One probe round. Returns (healthy agent ids, failed agent ids)."""
    targets = _claim(now)
    if not targets:
        return [], []
    outcomes = asyncio.run(_probe_all(targets))
    healthy = [agent_id for (agent_id, _), ok in zip(targets, outcomes, strict=True) if ok]
    failed = [agent_id for (agent_id, _), ok in zip(targets, outcomes, strict=True) if not ok]
    with transaction.atomic():
        if healthy:
            changes.apply(
                where="agent_id = ANY(%(agents)s)",
                assignments=_SUCCEEDED,
                params={"agents": healthy},
                reason="health probe succeeded",
                now=now,
            )
        if failed:
            changes.apply(
                where="agent_id = ANY(%(agents)s)",
                assignments=_FAILED,
                params={"agents": failed, "threshold": settings.AGENT_PROBE_FAILURE_THRESHOLD},
                reason="health probes failed",
                now=now,
            )
    return healthy, failed
