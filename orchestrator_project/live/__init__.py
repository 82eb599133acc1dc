"""Live updates: every change of a task or an agent, pushed to WebSocket clients after its commit.

`messages` says what a change looks like on the wire (the one place its shape is written);
`publisher` queues and sends them. Both apps publish here and the monitoring app listens, so neither
app imports the other to be seen live.
"""

from .publisher import (
    AGENTS_GROUP,
    TASKS_GROUP,
    WORKFLOW_RUNS_GROUP,
    flush,
    hand_off,
    publish_agent_changes,
    publish_task_transitions,
    publish_workflow_run_changes,
    subscribe_task_transitions,
)

__all__ = [
    "AGENTS_GROUP",
    "TASKS_GROUP",
    "WORKFLOW_RUNS_GROUP",
    "flush",
    "hand_off",
    "publish_agent_changes",
    "publish_task_transitions",
    "publish_workflow_run_changes",
    "subscribe_task_transitions",
]
