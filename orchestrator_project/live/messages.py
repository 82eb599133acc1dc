"""The shapes of live messages: a task transition and an agent change, each built here and nowhere else.

The dashboard, the WebSocket streams and the shared metrics (monitoring/recorder.py) read these
fields; docs/monitoring.md documents them for API users.
"""


def task_transition(
    *,
    task_id,
    kind,
    status,
    attempt,
    agent_id,
    at,
    priority,
    task_type,
    capabilities,
    timing=None,
    agent_call_outcome="",
):
    """One task transition. `timing`: {name: seconds} of the timings the transition measures (how long
    the task waited in the queue, until it was sent, until it ended; when a retry is due, and how long
    a prompt failover keeps it from the agents it tried)."""
    message = {
        "task_id": str(task_id),
        "status": str(status),
        "agent_id": str(agent_id) if agent_id else None,
        "attempt": attempt,
        "priority": priority,
        "timestamp": at.isoformat(),
        "kind": str(kind),
        "type": task_type,
        "capabilities": list(capabilities or []),
    }
    if timing:
        message.update(timing)
    if agent_call_outcome:
        message["agent_call_outcome"] = agent_call_outcome
    return message


def agent_change(*, agent_id, name, status, current_load, max_concurrency, circuit_state, at):
    """One agent's state as it is after a change (status, load, circuit). An unregistered agent is
    announced with status "unregistered"."""
    return {
        "agent_id": str(agent_id),
        "name": name,
        "status": str(status),
        "current_load": current_load,
        "max_concurrency": max_concurrency,
        "circuit_state": str(circuit_state),
        "timestamp": at.isoformat(),
    }


# The columns of agents_agent an agent_change is built from, in agent_change_from_row's order.
AGENT_CHANGE_COLUMNS = ("agent_id", "name", "status", "current_load", "max_concurrency", "circuit_state")


def agent_change_from_row(row, at):
    """agent_change from a row of AGENT_CHANGE_COLUMNS."""
    return agent_change(**dict(zip(AGENT_CHANGE_COLUMNS, row, strict=True)), at=at)


def workflow_run_change(*, run_id, workflow, version, status, reason, at):
    """A workflow run's new status (`type` "workflow_run.status")."""
    return {
        "type": "workflow_run.status",
        "run_id": str(run_id),
        "workflow": workflow,
        "version": version,
        "status": str(status),
        "reason": reason,
        "timestamp": at,
    }


def workflow_step_change(*, run_id, step_id, kind, status, attempt, task_id, reason, at):
    """A workflow step's new status (`type` "workflow_run.step"). Items of a map step are not sent one
    by one: their map step's own changes say how it goes."""
    return {
        "type": "workflow_run.step",
        "run_id": str(run_id),
        "step_id": step_id,
        "kind": kind,
        "status": str(status),
        "attempt": attempt,
        "task_id": task_id,
        "reason": reason,
        "timestamp": at,
    }
