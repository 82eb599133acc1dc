"""Fan-out of state changes to WebSocket clients, called after the database commit.

Whichever process made the change (web or worker) publishes to the Redis channel layer, so clients
connected to any web instance receive it. Transitions are sent in batches: one message per commit.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

TASKS_GROUP = "tasks"
AGENTS_GROUP = "agents"

logger = logging.getLogger(__name__)


def _send(group, message):
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # live updates are best effort; the database already holds the truth
        logger.warning("could not publish to %s", group, exc_info=True)


def publish_task_transitions(transitions):
    """`transitions`: dicts with task_id, status, agent_id, attempt, priority, timestamp."""
    if transitions:
        _send(TASKS_GROUP, {"type": "task.batch", "events": transitions})


def publish_agent_changes(changes):
    """`changes`: dicts with agent_id, status, current_load, circuit_state, timestamp."""
    if changes:
        _send(AGENTS_GROUP, {"type": "agent.batch", "events": changes})
