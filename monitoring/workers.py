"""Which Celery workers are alive, without a broadcast ping.

Each worker process writes a key with a short TTL every few seconds from a daemon thread; the health
check and /status count the keys. A ping would make every readiness probe wait for its full timeout
and wake every worker; a key read answers in a millisecond and a dead worker drops out by itself.
"""

import logging
import threading

from redis.exceptions import RedisError

from . import recorder

PREFIX = "orchestrator:workers:"
INTERVAL_SECONDS = 5
TTL_SECONDS = 3 * INTERVAL_SECONDS

logger = logging.getLogger(__name__)
_stop = threading.Event()


def announce(hostname):
    recorder.client().set(f"{PREFIX}{hostname}", "1", ex=TTL_SECONDS)


def start_presence(hostname):
    def beat():
        while not _stop.is_set():
            try:
                announce(hostname)
            except RedisError:
                logger.warning("could not announce worker presence", exc_info=True)
            _stop.wait(INTERVAL_SECONDS)

    _stop.clear()
    threading.Thread(target=beat, name="orchestrator-presence", daemon=True).start()


def withdraw(hostname):
    _stop.set()
    try:
        recorder.client().delete(f"{PREFIX}{hostname}")
    except RedisError:
        pass


def live_workers():
    """Hostnames of the workers that announced themselves recently. Raises RedisError if Redis is down."""
    return sorted(key.decode()[len(PREFIX) :] for key in recorder.client().scan_iter(f"{PREFIX}*", count=100))
