"""Waking dispatch: the broker only wakes workers; Postgres says what there is to do.

A burst of task creations must cost one Celery message, not one each: a Redis flag (set with NX)
marks that a wake-up is already on its way, and the dispatch round clears it before it claims, so a
task committed after the clear either is seen by that round or sets the flag again. If Redis is down
we publish anyway, and if a message is lost the beat sweep finds the work a few seconds later.
"""

import logging
import math
import time

from redis.exceptions import RedisError

from orchestrator_project.redis_client import get_redis

WAKE_FLAG = "orchestrator:dispatch:wake"
# If the message carrying a wake-up is lost, the flag expires and the next change wakes dispatch again.
WAKE_FLAG_TTL_MS = 5000

logger = logging.getLogger(__name__)


def wake_dispatch():
    try:
        if not get_redis().set(WAKE_FLAG, 1, nx=True, px=WAKE_FLAG_TTL_MS):
            return False
    except RedisError:
        logger.warning("Redis unavailable while waking dispatch; publishing anyway")
    from .jobs import dispatch_due

    try:
        dispatch_due.delay()
    except Exception:  # the broker is down: the beat sweep will find the work
        logger.warning("could not publish a dispatch wake-up; the sweep will pick the work up", exc_info=True)
        return False
    return True


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
