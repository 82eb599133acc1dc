"""What the database says right now: the numbers behind /metrics' gauges, /status and the dashboard.

Each function is one query. Counts by status use the (status, -created_at) index; the queue query only
reads pending rows.
"""

from datetime import timedelta

from django.db import connection
from django.db.models import Count

from agents.models import Agent, AgentRoute, AgentStatus, CircuitState
from tasks.models import EventKind, Task, TaskEvent, TaskStatus
from tasks.transitions import retry_timing

# Pending tasks that name no capability can go to any agent; they are counted under this label.
ANY_CAPABILITY = "*"


def tasks_by_status(tasks=None):
    """{status: count} over all tasks, or over the queryset `tasks`."""
    counts = {status: 0 for status in TaskStatus.values}
    tasks = Task.objects.all() if tasks is None else tasks
    counts.update(dict(tasks.order_by().values_list("status").annotate(n=Count("task_id"))))
    return counts


def agents_by_status(agents=None):
    """{status: count} over all agents, or over the queryset `agents`."""
    counts = {status: 0 for status in AgentStatus.values}
    agents = Agent.objects.all() if agents is None else agents
    counts.update(dict(agents.order_by().values_list("status").annotate(n=Count("agent_id"))))
    return counts


def learned_routes():
    """What the adaptive strategy learned per agent and capability (agents/routing.py), one query; a
    removed agent's rows go with it, so its series disappear from /metrics."""
    rows = (
        AgentRoute.objects.filter(latency_ms__isnull=False)
        .order_by("agent__name", "agent_id", "capability")
        .values_list("agent_id", "agent__name", "capability", "latency_ms", "success_rate", "samples")
    )
    return [
        {
            "agent_id": str(agent_id),
            "agent": name,
            "capability": capability,
            "latency_ms": round(latency, 1),
            "success_rate": round(success, 4),
            "samples": samples,
        }
        for agent_id, name, capability, latency, success, samples in rows
    ]


def agents_with_open_circuit():
    return Agent.objects.filter(circuit_state=CircuitState.OPEN).count()


def queue_depth(*, now):
    """{capability: {"depth": n, "oldest_age_seconds": s}} over pending tasks, one row per capability."""
    table = Task._meta.db_table
    sql = f"""
        SELECT capability, count(*), min(created_at)
        FROM {table},
             unnest(CASE WHEN cardinality(required_capabilities) = 0 THEN ARRAY[%s]::varchar[]
                         ELSE required_capabilities END) AS capability
        WHERE status = %s
        GROUP BY capability
        ORDER BY capability
    """  # table name from the model, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [ANY_CAPABILITY, TaskStatus.PENDING])
        rows = cursor.fetchall()
    return {
        capability: {"depth": depth, "oldest_age_seconds": round(max(0.0, (now - oldest).total_seconds()), 3)}
        for capability, depth, oldest in rows
    }


def last_minute(*, now, seconds=60):
    """Throughput and latency percentiles from the TaskEvent rows of the last `seconds`.

    Duration is created -> finished of the tasks that finished in the window; dispatch latency is
    created -> sent of the tasks sent to an agent in the window.
    """
    since = now - timedelta(seconds=seconds)
    counts = {kind: 0 for kind in (EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED)}
    counts.update(
        dict(
            TaskEvent.objects.filter(created_at__gte=since, kind__in=list(counts))
            .order_by()
            .values_list("kind")
            .annotate(n=Count("id"))
        )
    )
    events, tasks = TaskEvent._meta.db_table, Task._meta.db_table
    sql = f"""
        SELECT e.kind,
               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
                   ORDER BY extract(epoch FROM e.created_at - t.created_at))
        FROM {events} e JOIN {tasks} t ON t.task_id = e.task_id
        WHERE e.created_at >= %s AND e.kind IN (%s, %s)
        GROUP BY e.kind
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [since, EventKind.COMPLETED, EventKind.SENT])
        percentiles = {kind: values for kind, values in cursor.fetchall()}

    def _pcts(kind):
        values = percentiles.get(kind)
        if not values:
            return {"p50": None, "p95": None, "p99": None}
        return {name: round(float(v), 4) for name, v in zip(("p50", "p95", "p99"), values, strict=True)}

    finished = counts[EventKind.COMPLETED] + counts[EventKind.FAILED]
    return {
        "window_seconds": seconds,
        # Creation leaves no event row (the task row records it), so it is counted from the tasks.
        "created": Task.objects.filter(created_at__gte=since).count(),
        "completed": counts[EventKind.COMPLETED],
        "failed": counts[EventKind.FAILED],
        "cancelled": counts[EventKind.CANCELLED],
        "throughput_per_second": round(finished / seconds, 3),
        "failure_ratio": round(counts[EventKind.FAILED] / finished, 4) if finished else None,
        "duration_seconds": _pcts(EventKind.COMPLETED),
        "dispatch_latency_seconds": _pcts(EventKind.SENT),
    }


# --- Snapshots: the same shapes the WebSocket streams send -----------------------------------------

TASK_SNAPSHOT_ACTIVE = 200
TASK_SNAPSHOT_RECENT = 50
AGENT_SNAPSHOT_MAX = 500


def task_message(task):
    return {
        "type": "task.status",
        "task_id": str(task.task_id),
        "status": task.status,
        "agent_id": str(task.assigned_agent_id) if task.assigned_agent_id else None,
        "attempt": task.attempts,
        "priority": task.priority,
        "timestamp": task.updated_at.isoformat(),
        "task_type": task.type,
        "capabilities": list(task.required_capabilities),
        "created_at": task.created_at.isoformat(),
        **_retry_timing(task),
    }


def _retry_timing(task):
    """What the `retrying` event's message said of a task still waiting for its next attempt, so that a
    snapshot says it too: its backoff (when due, counted from its last change), and for a prompt
    failover how long the agents it tried are off limits. A task that is simply due (new, requeued, or
    retried by an operator) has neither."""
    if task.status != TaskStatus.PENDING:
        return {}
    if task.failover_until is not None:
        return retry_timing(max((task.failover_until - task.updated_at).total_seconds(), 0.0), failover=True)
    if task.next_attempt_at is not None and task.next_attempt_at > task.updated_at:
        return retry_timing((task.next_attempt_at - task.updated_at).total_seconds(), failover=False)
    return {}


def agent_message(agent):
    return {
        "type": "agent.status",
        "agent_id": str(agent.agent_id),
        "name": agent.name,
        "status": agent.status,
        "current_load": agent.current_load,
        "max_concurrency": agent.max_concurrency,
        "circuit_state": agent.circuit_state,
        "last_heartbeat": agent.last_heartbeat.isoformat() if agent.last_heartbeat else None,
        "timestamp": agent.updated_at.isoformat(),
    }


_TASK_FIELDS = (
    "task_id",
    "status",
    "assigned_agent_id",
    "attempts",
    "priority",
    "updated_at",
    "type",
    "required_capabilities",
    "created_at",
    "next_attempt_at",
    "failover_until",
)


def _matching_tasks(ids, statuses):
    tasks = Task.objects.all()
    if ids:
        tasks = tasks.filter(task_id__in=ids)
    if statuses:
        tasks = tasks.filter(status__in=statuses)
    return tasks


def task_snapshot(*, ids=None, statuses=None):
    """The latest non-terminal tasks and the most recent others, newest first, bounded.

    Returns {"tasks": [...], "complete_after": ISO time or None}: every matching task created after
    `complete_after` is in `tasks` (None: every matching task is). A client told of a task it does not
    hold can tell from this whether the snapshot missed it (older) or it is new since (younger).
    """
    tasks = _matching_tasks(ids, statuses).only(*_TASK_FIELDS)
    terminal = [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED]
    active = list(tasks.exclude(status__in=terminal).order_by("-created_at")[:TASK_SNAPSHOT_ACTIVE])
    recent = list(tasks.filter(status__in=terminal).order_by("-created_at")[:TASK_SNAPSHOT_RECENT])
    # A full section may have left older tasks out; a section that is not full holds all of its kind.
    floors = [
        section[-1].created_at
        for section, size in ((active, TASK_SNAPSHOT_ACTIVE), (recent, TASK_SNAPSHOT_RECENT))
        if len(section) == size
    ]
    rows = sorted(active + recent, key=lambda task: task.created_at, reverse=True)
    return {
        "tasks": [task_message(task) for task in rows],
        "complete_after": max(floors).isoformat() if floors else None,
    }


def task_counts(*, ids=None, statuses=None):
    return tasks_by_status(_matching_tasks(ids, statuses))


def _matching_agents(ids, statuses):
    agents = Agent.objects.all()
    if ids:
        agents = agents.filter(agent_id__in=ids)
    if statuses:
        agents = agents.filter(status__in=statuses)
    return agents


def agent_snapshot(*, ids=None, statuses=None):
    agents = _matching_agents(ids, statuses)
    return [agent_message(agent) for agent in agents.order_by("name", "agent_id")[:AGENT_SNAPSHOT_MAX]]


def agent_counts(*, ids=None, statuses=None):
    return agents_by_status(_matching_agents(ids, statuses))
