"""Waking dispatch: the broker only wakes workers; Postgres says what there is to do.

A wake-up is one Redis PUBLISH on a doorbell channel that every worker's runner listens to
(runner.Doorbell); a Celery message per wake-up cost the web and the worker a millisecond of CPU each
and tens of milliseconds of latency at 100 tasks/s (docs/benchmarks.md). A burst of task creations
rings once: a Redis flag (set with NX) marks that a ring is on its way, and the dispatch round clears it
before it claims, so a task committed after the clear either is seen by that round or sets the flag
again. Nothing is lost when nobody listens (a worker restarting, Redis down): every dispatcher also
runs on a timer and after (re)subscribing, and the beat sweep remains.

Task creation, the busiest path, rings through Postgres instead: the creating statement itself sends a
NOTIFY on `CREATED_CHANNEL` (tasks/services.py), which Postgres delivers when the transaction commits
and never if it rolls back, and which every worker's runner LISTENs to (runner.PostgresDoorbell). That
took the Redis round trip (~0.1 ms of the web's CPU) off every creation. Notification channels belong
to a database, so test runs, the benchmark and `make run` never ring each other.

Retries that fall due later are woken by delayed Celery messages (`wake_dispatch_later`).
"""

import logging
import math
import time
from functools import lru_cache

from redis.exceptions import RedisError

from orchestrator_project.redis_client import get_redis

WAKE_FLAG = "orchestrator:dispatch:wake"
CREATED_CHANNEL = "orchestrator_tasks_created"
# The NOTIFY a creating transaction sends (delivered on commit); a statement of its own, or folded into
# the INSERT (tasks/services.py).
RING_ON_COMMIT_SQL = f"SELECT pg_notify('{CREATED_CHANNEL}', '')"


def doorbell_channel():
    # Pub/sub channels ignore Redis database numbers; naming the number keeps a test run, the benchmark
    # and `make run` sharing one Redis from ringing each other's workers.
    return f"orchestrator:dispatch:doorbell:{get_redis().connection_pool.connection_kwargs.get('db', 0)}"


# If the message carrying a wake-up is lost, the flag expires and the next change wakes dispatch again.
WAKE_FLAG_TTL_MS = 5000

logger = logging.getLogger(__name__)


# Raise the flag and ring in one round trip: this runs after every task creation.
_RING = """
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then
    redis.call('PUBLISH', KEYS[2], '1')
    return 1
end
return 0
"""


@lru_cache(maxsize=1)
def _ring_script():
    return get_redis().register_script(_RING)


def wake_dispatch():
    try:
        return bool(_ring_script()(keys=[WAKE_FLAG, doorbell_channel()], args=[WAKE_FLAG_TTL_MS]))
    except RedisError:
        logger.warning(
            "Redis unavailable while waking dispatch; the dispatchers' timers will pick the work up"
        )
    return False


def clear_wake_flag():
    try:
        get_redis().delete(WAKE_FLAG)
    except RedisError:
        pass


def wake_dispatch_later(delay_seconds):
    """Wake dispatch when a retry falls due. Wake-ups are coalesced into 100 ms buckets, so a thousand
    retries due in the same instant cost one delayed message; the sweep remains the safety net.

    A bucket's message fires at the bucket's *end*, which is after every due time in it; so once it has
    fired, no retry can join it (that would need a due time in the past).
    """
    if delay_seconds <= 0:
        return wake_dispatch()
    bucket = math.ceil((time.time() + delay_seconds) * 10)
    try:
        if not get_redis().set(f"{WAKE_FLAG}:{bucket}", 1, nx=True, px=int(delay_seconds * 1000) + 2000):
            return False
    except RedisError:
        pass
    from .jobs import dispatch_due

    try:
        dispatch_due.apply_async(countdown=max(0.0, bucket / 10 - time.time()) + 0.01)
    except Exception:
        logger.warning(
            "could not schedule a dispatch wake-up; the sweep will pick the work up", exc_info=True
        )
        return False
    return True
