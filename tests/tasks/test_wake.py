"""Wake-ups: a ring on commit (now, or at a due time), heard by every worker's bell; nothing rings for
a rolled-back change, and a missed ring costs only latency (the dispatcher's own clock)."""

import math
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tasks import services
from tasks.engine import wake
from tasks.engine.dispatcher import Dispatcher
from tasks.models import Task
from tasks.serializers import plainly_valid_task

TASKS = "/api/v1/tasks"


def _valid(body):
    return plainly_valid_task(body)


def test_a_creation_rings_when_it_commits_and_not_when_it_rolls_back(dispatch_rings, operator_client):
    assert operator_client.post(TASKS, {"type": "summarize"}, format="json").status_code == 201
    assert dispatch_rings.heard() == [wake.NEW_WORK]

    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_task(data=_valid({"type": "summarize"}))
        raise RuntimeError("the caller's transaction fails")
    assert dispatch_rings.heard() == []
    assert Task.objects.count() == 1

    with transaction.atomic():
        services.create_task(data=_valid({"type": "summarize"}))
        assert dispatch_rings.heard() == []  # nothing before the commit
    assert dispatch_rings.heard() == [wake.NEW_WORK]


@pytest.mark.parametrize("size", [3, 50], ids=["insert", "copy"])
def test_a_bulk_rings_once_and_tasks_left_for_operators_do_not_ring(dispatch_rings, operator_client, size):
    bulk = {"tasks": [{"type": "summarize"}] * size}
    assert operator_client.post(f"{TASKS}/bulk", bulk, format="json").status_code == 201
    assert dispatch_rings.heard() == [wake.NEW_WORK]
    manual = {"type": "summarize", "auto_dispatch": False}
    assert operator_client.post(TASKS, manual, format="json").status_code == 201
    manual_bulk = {"tasks": [manual] * size}
    assert operator_client.post(f"{TASKS}/bulk", manual_bulk, format="json").status_code == 201
    assert dispatch_rings.heard() == []


def test_a_delayed_ring_carries_its_due_time_in_tenths_of_a_second(dispatch_rings):
    # 11 ms into a tenth of a second, so the second ring 10 ms later falls in the same tenth.
    tenth = math.floor(timezone.now().timestamp() * 10) / 10 + 3.2
    due = datetime.fromtimestamp(tenth, tz=UTC) + timedelta(milliseconds=11)
    with transaction.atomic():
        wake.ring_at(due)
        wake.ring_at(due + timedelta(milliseconds=10))  # the same tenth: one ring
    [payload] = dispatch_rings.heard()
    assert payload == str(math.ceil(due.timestamp() * 10))
    assert due.timestamp() <= wake.due_time(payload) < due.timestamp() + 0.1


def test_a_ring_with_an_unreadable_payload_counts_as_now():
    assert wake.due_time("") is None
    assert wake.due_time(wake.NEW_WORK) is None
    assert wake.due_time("soon") is None
    assert wake.due_time("17000000005") == 1700000000.5


class _Rounds(Dispatcher):
    """A dispatcher whose rounds only record when they ran."""

    def __init__(self):
        super().__init__(runner=None)
        self.ran = []
        self.ran_once_more = threading.Condition()

    def dispatch_rounds(self, on_fleet_full=None):
        with self.ran_once_more:
            self.ran.append(time.time())
            self.ran_once_more.notify_all()

    def wait_for_rounds(self, count, timeout=10):
        with self.ran_once_more:
            assert self.ran_once_more.wait_for(lambda: len(self.ran) >= count, timeout), self.ran


class _CountingDispatcher:
    def __init__(self):
        self.kicks = 0
        self.new = 0
        self.due = []
        self.changed = threading.Condition()

    def kick(self):
        with self.changed:
            self.kicks += 1
            self.changed.notify_all()

    def new_work(self):
        with self.changed:
            self.new += 1
            self.changed.notify_all()

    def wake_at(self, when):
        with self.changed:
            self.due.append(when)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout=10):
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), (self.kicks, self.new, self.due)


def test_a_due_time_runs_a_round_then_and_not_before(settings):
    settings.SWEEP_INTERVAL_SECONDS = 60  # the clock's own rounds stay out of the way
    dispatcher = _Rounds()
    dispatcher.start()
    due = time.time() + 0.3
    dispatcher.wake_at(due)
    dispatcher.kick()
    dispatcher.wait_for_rounds(1)
    assert dispatcher.ran[0] < due  # the kick ran at once; the due time is still to come
    dispatcher.wait_for_rounds(2)
    assert dispatcher.ran[1] >= due
    assert len(dispatcher.ran) == 2


def test_the_bell_kicks_on_listening_on_every_ring_and_after_losing_its_session(
    transactional_db, operator_client
):
    dispatcher = _CountingDispatcher()
    bell = wake.Bell(dispatcher)
    bell.start()
    try:
        dispatcher.wait_for(lambda: dispatcher.kicks == 1)  # listening: what was rung meanwhile waits
        assert operator_client.post(TASKS, {"type": "summarize"}, format="json").status_code == 201
        dispatcher.wait_for(lambda: dispatcher.new == 1)  # a creation: new work
        with transaction.atomic():
            wake.ring()
        dispatcher.wait_for(lambda: dispatcher.kicks == 2)  # anything else: now
        due = timezone.now() + timedelta(seconds=5)
        wake.ring_at(due)
        dispatcher.wait_for(lambda: len(dispatcher.due) == 1)
        assert abs(dispatcher.due[0] - due.timestamp()) < 0.1
        lost = bell.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [lost])
            assert cursor.fetchone() == (True,)
        dispatcher.wait_for(lambda: dispatcher.kicks == 3)  # listening again, on a new session
        assert bell.backend_pid != lost
        assert operator_client.post(TASKS, {"type": "summarize"}, format="json").status_code == 201
        dispatcher.wait_for(lambda: dispatcher.new == 2)
        assert dispatcher.kicks == 3
    finally:
        bell.stop()
        bell.join(10)
    assert not bell.is_alive()
