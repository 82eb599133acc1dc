"""Fan-out of state changes to WebSocket clients and to the shared metrics, called after the commit.

Whichever process made the change (web or worker) publishes to the Redis channel layer, so clients
connected to any web instance receive it. One call is one batch: one channel-layer message per group and
one Redis pipeline for the metrics, whatever the number of transitions. Both are best effort: the
database already holds the truth, and a client that reconnects gets a fresh snapshot.

Message shapes (what callers pass):
- task transition: task_id, status, agent_id, attempt, priority, timestamp, kind, type (the task's
  type), capabilities, and optionally duration_seconds, dispatch_latency_seconds, agent_call_outcome.
- agent change: agent_id, status, current_load, max_concurrency, circuit_state, timestamp, name.
"""

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from . import recorder

TASKS_GROUP = "tasks"
AGENTS_GROUP = "agents"
# A stuck Redis must not hold a request or a worker thread for long after its commit.
SEND_TIMEOUT_SECONDS = 1.0

logger = logging.getLogger(__name__)


async def _group_send(layer, group, message):
    await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT_SECONDS)


def _send(group, message):
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(_group_send)(layer, group, message)
    except Exception:  # live updates are best effort; the database already holds the truth
        logger.warning("could not publish to %s", group, exc_info=True)


def publish_task_transitions(transitions):
    """Send a batch of task transitions to the `tasks` group and count them in the shared metrics."""
    if not transitions:
        return
    transitions = list(transitions)
    try:
        recorder.record_task_transitions(transitions)
    except Exception:  # never let metrics break the caller's on_commit chain
        logger.warning("could not record task metrics", exc_info=True)
    _send(TASKS_GROUP, {"type": "task.batch", "events": transitions})


def publish_agent_changes(changes):
    """Send a batch of agent changes (status, load, circuit) to the `agents` group."""
    if changes:
        _send(AGENTS_GROUP, {"type": "agent.batch", "events": list(changes)})
