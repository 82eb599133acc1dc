"""Liveness (`/health`) and readiness (`/health/detailed`).

`/health` answers without touching any dependency, so a slow database never restarts the pod.
`/health/detailed` checks every dependency concurrently, each under its own short timeout, and reports
`healthy`, `degraded` (200: serving, but workers, beat or live updates are impaired) or `unhealthy`
(503: the database or Redis is down, so no request can be served properly). No authentication: it is
a probe, so it shows neither URLs, host names nor error messages, only error classes and timings.
"""

import asyncio
import logging
import time

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from . import beat, event_relay, schedules
from .workers import live_workers

CHECK_TIMEOUT_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 1.0
# Without these nothing works: their failure makes the service unhealthy (503) rather than degraded.
CRITICAL_CHECKS = ("database", "redis")

logger = logging.getLogger(__name__)


@require_GET
def health(request):
    return JsonResponse({"status": "healthy", "service": "agent-orchestrator", "version": settings.VERSION})


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok"}


async def _redis():
    client = aioredis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=PING_TIMEOUT_SECONDS, socket_connect_timeout=PING_TIMEOUT_SECONDS
    )
    try:
        await client.ping()
    finally:
        await client.aclose()
    return {"status": "ok"}


def _celery_workers():
    workers = len(live_workers())
    # No worker means nothing is dispatched: still serving reads and accepting tasks, so degraded.
    return {"status": "ok" if workers else "degraded", "workers": workers}


def _beat(expected):
    state = beat.beat_state(expected=expected)
    return {
        "status": "ok" if state["state"] == "ok" else "degraded",
        "state": state["state"],
        "last_sweep_age_seconds": state["last_sweep_age_seconds"],
        "max_age_seconds": state["max_age_seconds"],
        "sweeps": state["sweeps"],
    }


def _event_relay():
    state = event_relay.relay_state()
    # Degraded, not unhealthy: tasks run on without the relay; their events wait in the outbox.
    return {"status": "ok" if state["state"] in ("ok", "off") else "degraded", **state}


async def _channel_layer():
    layer = get_channel_layer()
    if layer is None:
        return {"status": "error", "error": "NotConfigured"}
    channel = await layer.new_channel("health")
    nonce = f"{time.monotonic_ns()}"
    await layer.send(channel, {"type": "health.ping", "nonce": nonce})
    message = await layer.receive(channel)
    return {"status": "ok" if message.get("nonce") == nonce else "error"}


async def _beat_check():
    # The schedule rows are read on the request's own database thread (a connection opened in a pool
    # thread would stay checked out); only the Redis part runs where a stuck Redis cannot hold it.
    expected = await sync_to_async(schedules.expected)()
    return await sync_to_async(_beat, thread_sensitive=False)(expected)


CHECKS = {
    "database": lambda: sync_to_async(_database)(),
    "redis": _redis,
    # Not thread-sensitive: a broker that does not answer must not hold the request's own thread.
    "celery_workers": lambda: sync_to_async(_celery_workers, thread_sensitive=False)(),
    "beat": _beat_check,
    "channel_layer": _channel_layer,
    # Thread-sensitive, like the database check: it reads Postgres, and only the request's own thread
    # gives its connection back when the request ends.
    "event_relay": lambda: sync_to_async(_event_relay)(),
}


async def _run_check(name, check):
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        result = {"status": "error", "error": "Timeout"}
    except Exception as exc:  # a probe reports failures, it does not raise them
        logger.warning("health check %s failed", name, exc_info=True)
        result = {"status": "error", "error": type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return name, result


def overall(checks):
    if any(checks[name]["status"] == "error" for name in CRITICAL_CHECKS):
        return "unhealthy"
    if any(result["status"] != "ok" for result in checks.values()):
        return "degraded"
    return "healthy"


async def run_checks():
    results = await asyncio.gather(*(_run_check(name, check) for name, check in CHECKS.items()))
    return dict(results)


@require_GET
async def health_detailed(request):
    checks = await run_checks()
    status = overall(checks)
    body = {"status": status, "service": "agent-orchestrator", "version": settings.VERSION, "checks": checks}
    return JsonResponse(body, status=503 if status == "unhealthy" else 200)
