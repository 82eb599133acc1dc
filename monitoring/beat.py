"""When the periodic sweeps last ran, so `/health/detailed` can tell a dead Celery beat from a live one.

Whenever a worker starts a sweep job (one of schedules.SWEEPS, seen through Celery's task_prerun signal,
so the apps that own the sweeps need not know about this), `record_sweep(name)` writes the time to one
Redis hash shared by all processes. Each sweep is judged against its own beat schedule row
(monitoring/schedules.py): it is fresh while younger than STALE_FACTOR x the row's interval. Beat is
considered alive while any sweep is fresh; each sweep's own verdict is reported beside it. A disabled
row's sweep is not judged, and a sweep with no row of its own (a name outside schedules.SWEEPS) is
judged against SWEEP_INTERVAL_SECONDS.
"""

import logging
import time

from celery.signals import task_prerun
from django.conf import settings
from redis.exceptions import RedisError

from . import recorder, schedules

SWEEPS_KEY = "orchestrator:beat:sweeps"
STALE_FACTOR = 3

logger = logging.getLogger(__name__)


def record_sweep(name):
    """Note that the sweep `name` ran now. Never raises: a missing heartbeat only degrades health."""
    try:
        recorder.client().hset(SWEEPS_KEY, name, f"{time.time():.3f}")
    except RedisError:
        logger.warning("could not record sweep %s", name, exc_info=True)


# Celery job name -> the sweep's name in /health/detailed.
_SWEEP_OF_JOB = {sweep.task: sweep.name for sweep in schedules.SWEEPS}


@task_prerun.connect
def _record_sweep_job(sender=None, **_):
    name = _SWEEP_OF_JOB.get(getattr(sender, "name", None))
    if name:
        record_sweep(name)


def last_sweeps():
    """{name: epoch seconds} of every sweep that has reported. Raises RedisError if Redis is down."""
    raw = recorder.client().hgetall(SWEEPS_KEY)
    return {name.decode(): float(value) for name, value in raw.items()}


def _verdict(age, expected):
    if not expected.enabled:
        state, max_age = "disabled", None
    elif expected.seconds is None:
        state, max_age = "unknown", None
    else:
        max_age = STALE_FACTOR * expected.seconds
        state = "ok" if age <= max_age else "stale"
    return {
        "age_seconds": age,
        "interval_seconds": expected.seconds,
        "max_age_seconds": max_age,
        "state": state,
    }


def beat_state(*, now=None, expected=None):
    """{"state", "last_sweep_age_seconds", "max_age_seconds", "sweeps": {name: verdict}}.

    state: ok, stale, never (no sweep has reported) or unknown (no sweep that reported can be judged).

    `expected` ({name: schedules.Expected}) is read from the schedule rows unless given (one query).
    Raises RedisError if Redis is down.
    """
    now = time.time() if now is None else now
    sweeps = last_sweeps()
    if not sweeps:
        return {"state": "never", "last_sweep_age_seconds": None, "max_age_seconds": None, "sweeps": {}}
    expected = schedules.expected() if expected is None else expected
    fallback = schedules.Expected(seconds=float(settings.SWEEP_INTERVAL_SECONDS))
    verdicts = {
        name: _verdict(round(max(0.0, now - at), 3), expected.get(name, fallback))
        for name, at in sorted(sweeps.items())
    }
    judged = [verdict for verdict in verdicts.values() if verdict["state"] in ("ok", "stale")]
    fresh = [verdict for verdict in judged if verdict["state"] == "ok"]
    freshest = min(fresh or judged or verdicts.values(), key=lambda verdict: verdict["age_seconds"])
    return {
        # unknown: the sweeps that ran have no interval to judge them by (disabled, or not on an interval).
        "state": "ok" if fresh else "stale" if judged else "unknown",
        "last_sweep_age_seconds": min(verdict["age_seconds"] for verdict in verdicts.values()),
        # What the freshest sweep that keeps beat alive (or, when stale, the freshest of all) is judged by.
        "max_age_seconds": freshest["max_age_seconds"],
        "sweeps": verdicts,
    }
