"""Wake-ups: one doorbell ring per burst, heard by every runner, and a missed ring costs only latency."""

import threading

import redis
from django.conf import settings

from tasks.runner import Doorbell
from tasks.wake import WAKE_FLAG, clear_wake_flag, doorbell_channel, wake_dispatch


def _subscriber():
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(doorbell_channel())
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    return pubsub


def test_a_burst_rings_once_until_a_round_clears_the_flag():
    pubsub = _subscriber()
    try:
        assert wake_dispatch() is True
        assert [wake_dispatch() for _ in range(5)] == [False] * 5
        assert pubsub.get_message(timeout=2)["channel"].decode() == doorbell_channel()
        assert pubsub.get_message(timeout=0.2) is None
        clear_wake_flag()  # what a dispatch round does before it claims
        assert wake_dispatch() is True
        assert pubsub.get_message(timeout=2) is not None
    finally:
        pubsub.close()


def test_the_channel_is_per_redis_database():
    assert doorbell_channel().endswith(f":{settings.REDIS_URL.rsplit('/', 1)[1]}")


class _CountingDispatcher:
    def __init__(self):
        self.kicks = 0
        self.kicked = threading.Condition()

    def kick(self):
        with self.kicked:
            self.kicks += 1
            self.kicked.notify_all()

    def wait_for(self, count, timeout=5):
        with self.kicked:
            assert self.kicked.wait_for(lambda: self.kicks >= count, timeout), f"{self.kicks} kicks"


def test_the_doorbell_kicks_on_subscribing_and_on_every_ring():
    dispatcher = _CountingDispatcher()
    Doorbell(dispatcher).start()
    # Subscribing kicks once: rings sent while nobody listened are gone, their work is in Postgres.
    dispatcher.wait_for(1)
    redis.Redis.from_url(settings.REDIS_URL).delete(WAKE_FLAG)
    assert wake_dispatch()
    dispatcher.wait_for(2)
