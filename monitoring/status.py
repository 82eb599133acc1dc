"""`GET /status`: one JSON document describing the whole system, for operators and their scripts.

It needs a viewer (session or bearer token), like the rest of the read API: it reveals no secret, but
capability names and throughput describe the business. Workers are counted from the presence keys they
refresh themselves (monitoring/workers.py), never with a broadcast ping.
"""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from redis.exceptions import RedisError
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator_project.accounts.permissions import IsViewer

from . import beat, event_relay, queries
from .workers import live_workers

# The operation's description in the API docs (the module docstring above is for developers).
DESCRIPTION = (
    "One JSON document describing the whole system, for operators and their scripts: `agents` and `tasks` "
    "counted by status (and how many agents have an open circuit breaker), the `queue` (pending tasks, the "
    "age of the oldest, per capability), `last_minute` (tasks created, completed, failed and cancelled, "
    "throughput, failure ratio, duration and dispatch latency percentiles), the Celery `workers` (`count` "
    "is null and `state` `unknown` when Redis cannot be reached), the `beat` scheduler's sweeps, the "
    "`events` relay, and the `service`, `version` and `timestamp`. Viewers and operators, by session or "
    "bearer token."
)


def worker_count():
    """How many Celery workers announced themselves recently, or None if Redis could not be asked."""
    try:
        return len(live_workers())
    except Exception:  # Redis is down: reported as unknown, never raised
        return None


def _beat():
    try:
        return beat.beat_state()
    except RedisError:
        return {"state": "unknown", "last_sweep_age_seconds": None, "sweeps": {}}


def system_status(*, now=None):
    now = now or timezone.now()
    tasks = queries.tasks_by_status()
    agents = queries.agents_by_status()
    queue = queries.queue_depth(now=now)
    workers = worker_count()
    return {
        "service": "agent-orchestrator",
        "version": settings.VERSION,
        "timestamp": now.isoformat(),
        "agents": {
            "total": sum(agents.values()),
            "by_status": agents,
            "circuit_open": queries.agents_with_open_circuit(),
        },
        "tasks": {"total": sum(tasks.values()), "by_status": tasks},
        "queue": {
            "depth": tasks["pending"],
            "oldest_age_seconds": max((row["oldest_age_seconds"] for row in queue.values()), default=None),
            "by_capability": queue,
        },
        "last_minute": queries.last_minute(now=now),
        "workers": {
            "count": workers,
            "state": "unknown" if workers is None else ("ok" if workers else "none"),
        },
        "beat": _beat(),
        "events": event_relay.relay_state(),
    }


class StatusView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(summary="System status", description=DESCRIPTION, responses={200: dict})
    def get(self, request):
        return Response(system_status())
