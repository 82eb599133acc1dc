"""Wake-ups: one doorbell ring per burst, heard by every runner, and a missed ring costs only latency.
Creations ring through Postgres (a NOTIFY delivered on commit), everything else through Redis."""

import threading

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from tasks import services
from tasks.models import Task
from tasks.runner import Doorbell, PostgresDoorbell
from tasks.serializers import plainly_valid_task
from tasks.wake import CREATED_CHANNEL, WAKE_FLAG, clear_wake_flag, doorbell_channel, wake_dispatch

TASKS = "/api/v1/tasks"


def _valid(body):
    return plainly_valid_task(body)


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


# --- Creations ring through Postgres ------------------------------------------------------------


@pytest.fixture
def listener(transactional_db):
    """A session LISTENing on the creations' channel, as a worker's doorbell does."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {CREATED_CHANNEL}")

        def heard(timeout=0.5):
            return [n.channel for n in conn.notifies(timeout=timeout)]

        yield heard


def test_a_creation_rings_when_it_commits_and_not_when_it_rolls_back(listener, operator_client):
    assert operator_client.post(TASKS, {"type": "summarize"}, format="json").status_code == 201
    assert listener() == [CREATED_CHANNEL]

    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_task(data=_valid({"type": "summarize"}))
        raise RuntimeError("the caller's transaction fails")
    assert listener() == []
    assert Task.objects.count() == 1

    with transaction.atomic():
        services.create_task(data=_valid({"type": "summarize"}))
        assert listener(timeout=0.2) == []  # nothing before the commit
    assert listener() == [CREATED_CHANNEL]


def test_a_bulk_rings_once_and_tasks_left_for_operators_do_not_ring(listener, operator_client):
    bulk = {"tasks": [{"type": "summarize"}] * 50}
    assert operator_client.post(f"{TASKS}/bulk", bulk, format="json").status_code == 201
    assert listener() == [CREATED_CHANNEL]
    manual = {"type": "summarize", "auto_dispatch": False}
    assert operator_client.post(TASKS, manual, format="json").status_code == 201
    assert operator_client.post(f"{TASKS}/bulk", {"tasks": [manual] * 3}, format="json").status_code == 201
    assert listener() == []


def test_the_postgres_doorbell_kicks_on_listening_on_every_creation_and_after_losing_its_session(
    transactional_db, operator_client
):
    dispatcher = _CountingDispatcher()
    doorbell = PostgresDoorbell(dispatcher)
    doorbell.start()
    try:
        dispatcher.wait_for(1)  # listening kicks once: what was created meanwhile waits in Postgres
        assert operator_client.post(TASKS, {"type": "summarize"}, format="json").status_code == 201
        dispatcher.wait_for(2)
        lost = doorbell.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [lost])
            assert cursor.fetchone() == (True,)
        dispatcher.wait_for(3)  # listening again, on a new session
        assert doorbell.backend_pid != lost
        assert operator_client.post(TASKS, {"type": "summarize"}, format="json").status_code == 201
        dispatcher.wait_for(4)
    finally:
        doorbell.stop()
        doorbell.join(10)
    assert not doorbell.is_alive()
