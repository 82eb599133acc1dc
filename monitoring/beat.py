"""When the periodic sweeps last ran, so `/health/detailed` can tell a dead Celery beat from a live one.

Whenever a worker starts one of the sweep jobs (SWEEP_JOBS, seen through Celery's task_prerun signal,
so the apps that own the sweeps need not know about this), `record_sweep(name)` writes the time to one
Redis hash shared by all processes. Beat is considered alive while the most recent sweep of any name
is fresher than 3 x SWEEP_INTERVAL_SECONDS (sweeps with longer intervals of their own do not make it
look dead).
"""

import logging
import time

from celery.signals import task_prerun
from django.conf import settings
from redis.exceptions import RedisError

from . import recorder

SWEEPS_KEY = "orchestrator:beat:sweeps"
STALE_FACTOR = 3
# Celery job name -> the sweep's name in /health/detailed.
SWEEP_JOBS = {
    "tasks.sweep": "tasks.sweep",
    "agents.jobs.expire_stale_agents": "agents.liveness",
    "agents.jobs.probe_agents": "agents.probes",
}

logger = logging.getLogger(__name__)


def record_sweep(name):
    """Note that the sweep `name` ran now. Never raises: a missing heartbeat only degrades health."""
    try:
        recorder.client().hset(SWEEPS_KEY, name, f"{time.time():.3f}")
    except RedisError:
        logger.warning("could not record sweep %s", name, exc_info=True)


@task_prerun.connect
def _record_sweep_job(sender=None, **_):
    name = SWEEP_JOBS.get(getattr(sender, "name", None))
    if name:
        record_sweep(name)


def last_sweeps():
    """{name: epoch seconds} of every sweep that has reported. Raises RedisError if Redis is down."""
    raw = recorder.client().hgetall(SWEEPS_KEY)
    return {name.decode(): float(value) for name, value in raw.items()}


def beat_state(*, now=None):
    """{"state": "ok"|"stale"|"never", "last_sweep_age_seconds", "sweeps": {name: age}, "max_age_seconds"}."""
    now = time.time() if now is None else now
    sweeps = last_sweeps()
    max_age = STALE_FACTOR * settings.SWEEP_INTERVAL_SECONDS
    ages = {name: round(max(0.0, now - at), 3) for name, at in sorted(sweeps.items())}
    if not ages:
        return {"state": "never", "last_sweep_age_seconds": None, "sweeps": {}, "max_age_seconds": max_age}
    freshest = min(ages.values())
    return {
        "state": "ok" if freshest <= max_age else "stale",
        "last_sweep_age_seconds": freshest,
        "sweeps": ages,
        "max_age_seconds": max_age,
    }
