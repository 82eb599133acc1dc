"""A runner that shut down leaves nothing of itself in the process: its writer writes what was queued,
closes its database session and ends (test modules each start a runner: every one left a session
open, and the test database could not be dropped at the end)."""

import threading
import uuid

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from tasks.engine.runner import Runner
from tasks.engine.writer import SentMark

from .conftest import wait_until


def sessions():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {pid for (pid,) in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_shutdown_ends_the_writer_and_closes_its_session():
    opened = {}  # thread name -> the backend pid of the session it opened

    def record(sender, connection, **_):
        opened[threading.current_thread().name] = connection.connection.info.backend_pid

    connection_created.connect(record)
    try:
        runner = Runner().start()
        # A mark for no task: the writer opens its session to write it, and changes nothing.
        runner.writer.put(SentMark(uuid.uuid4(), 1, uuid.uuid4()))
        assert runner.writer.wait_idle(10)
    finally:
        connection_created.disconnect(record)
    writers = opened[runner.writer.name]
    assert writers in sessions()
    runner.shutdown(grace=0)
    # Every thread ends: a dispatcher left to its clock would keep opening sessions for later tests.
    for thread in (runner.writer, runner.dispatcher, runner._thread):
        assert not thread.is_alive(), thread.name
    assert runner.loop.is_closed()
    # The server ends a closed session's backend a moment after the client lets go of it.
    wait_until(lambda: writers not in sessions(), timeout=10, message="the writer's session to end")
