"""The relay looks only at rows from its floor on (relay.py): the floor rises past what it published, and
never past a row it held back for its entity's order, which would then never be published."""

import threading
from collections import defaultdict

from django.db import connection, transaction

from orchestrator_project.outbox.models import OutboxEvent
from tasks import services
from tests.outbox.test_outbox_writes import valid
from tests.tasks.conftest import wait_until


class RecordingSink:
    """The broker's side of the relay, kept in memory: what was published, in order."""

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    def publish(self, events):
        with self._lock:
            self.events.extend(events)
        return [event.position for event in events]

    def close(self):
        pass

    def sequences(self):
        with self._lock:
            per_entity = defaultdict(list)
            for event in self.events:
                per_entity[event.aggregateid].append(event.sequence)
            return per_entity


class OpenTransaction(threading.Thread):
    """`first()` in a transaction left open (its xid taken) until `finish()`, which runs `then()` in it
    and commits."""

    def __init__(self, first, then=lambda: None):
        super().__init__(daemon=True)
        self.first, self.then = first, then
        self.ready, self._go, self.error = threading.Event(), threading.Event(), None

    def run(self):
        try:
            with transaction.atomic():
                self.first()
                self.ready.set()
                assert self._go.wait(30)
                self.then()
        except Exception as exc:  # surfaced by finish()
            self.error = exc
            self.ready.set()
        finally:
            connection.close()

    def begin(self):
        self.start()
        assert self.ready.wait(30) and self.error is None, self.error
        return self

    def finish(self):
        self._go.set()
        self.join(30)
        assert self.error is None, self.error


def _all_published():
    return not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def _create():
    return services.create_task(data=valid())[0]


def test_the_floor_rises_to_the_last_transaction_published(start_relay):
    relay = start_relay(RecordingSink(), batch=4)  # several batches
    for _ in range(10):
        _create()
    wait_until(_all_published, message="every event to be published")
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(txid)::text FROM outbox_event")
        newest = cursor.fetchone()[0]
    wait_until(lambda: relay._floor == newest, message=f"the floor to reach {newest}, not {relay._floor}")


def test_a_row_held_back_for_its_entitys_order_is_published_after_the_floor_moved_on(start_relay):
    sink = RecordingSink()
    start_relay(sink)
    contested = _create()
    wait_until(lambda: sink.sequences()[contested.task_id] == [1], message="the created event")

    # xids in this order: early < filler < blocker < late.
    early = OpenTransaction(_create, then=lambda: services.retry_task(task_id=contested.task_id)).begin()
    filler = _create()
    blocker = OpenTransaction(_create).begin()
    services.cancel_task(task_id=contested.task_id)  # `late`: the contested task's event #2
    early.finish()  # its event #3, under early's xid, the oldest of all
    # While the blocker runs, #2 (a newer xid than the blocker's) may not go out, so #3 is held back,
    # though its xid sorts before the filler's rows, which do go out.
    wait_until(lambda: sink.sequences()[filler.task_id] == [1], message="the filler's event")
    assert sink.sequences()[contested.task_id] == [1]

    blocker.finish()
    wait_until(_all_published, message="every event to be published, the held one included")
    assert sink.sequences()[contested.task_id] == [1, 2, 3]
    assert len({event.event_id for event in sink.events}) == len(sink.events) == OutboxEvent.objects.count()
