"""A runner that shut down leaves nothing of itself in the process: its writer writes what was queued,
closes its database session and ends (test modules each start a runner: every one left a session
open, and the test database could not be dropped at the end)."""

import uuid

import pytest
from django.db import connection

from tasks.engine.runner import Runner
from tasks.engine.writer import SentMark


def sessions():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {pid for (pid,) in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_shutdown_ends_the_writer_and_closes_its_session():
    runner = Runner().start()
    before = sessions()
    # A mark for no task: the writer opens its session to write it, and changes nothing.
    runner.writer.put(SentMark(uuid.uuid4(), 1, uuid.uuid4()))
    assert runner.writer.wait_idle(10)
    writers = sessions() - before
    runner.shutdown(grace=0)
    assert not runner.writer.is_alive()
    assert writers and not writers & sessions()
