"""The relay's counters, shared through Redis so that /metrics (a web process) can read what the relay
process did: events published and replayed, failed attempts, and when the leader last went round.

Best effort, like monitoring/recorder.py: a Redis error is logged and dropped, never holds up the relay.
"""

import logging
import time

import redis
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY = "orchestrator:outbox:v1:relay"
COUNTERS = ("published", "replayed", "failures")


def _client():
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


class Recorder:
    """Held by the relay: one client for its life."""

    def __init__(self):
        self.client = _client()

    def add(self, **counts):
        pipe = self.client.pipeline(transaction=False)
        for name, count in counts.items():
            if count:
                pipe.hincrby(KEY, name, count)
        pipe.hset(KEY, "leader_seen_at", time.time())
        try:
            pipe.execute()
        except RedisError:
            logger.warning("relay stats not recorded", exc_info=True)

    def close(self):
        self.client.close()


def read():
    """{published, replayed, failures: int; leader_seen_seconds_ago: float or None}."""
    client = _client()
    try:
        raw = {key.decode(): value.decode() for key, value in client.hgetall(KEY).items()}
    finally:
        client.close()
    seen = raw.get("leader_seen_at")
    return {
        **{name: int(raw.get(name, 0)) for name in COUNTERS},
        "leader_seen_seconds_ago": None if seen is None else max(0.0, time.time() - float(seen)),
    }
