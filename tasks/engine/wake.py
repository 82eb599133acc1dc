"""Waking dispatch. The broker only wakes workers; Postgres says what there is to do.

Every worker runs dispatch rounds (dispatcher.py). Exactly three things start one:

1. A ring: a NOTIFY on CHANNEL sent inside the transaction that made work dispatchable (tasks created,
   a task handed back or retried by an operator, an agent back online, a circuit reset, a slot freed by
   an agent's report through the API). Postgres delivers it when that transaction commits and never if
   it rolls back, to every worker's Bell (one LISTEN session each). Its payload is empty for "now", or
   the time at which work falls due, in tenths of a second since the epoch: a retry's backoff, a tripped
   circuit's probe; or NEW_WORK for a creation. Identical rings of one transaction arrive once; a
   creation folds its ring into the INSERT itself (services.py), so the busiest path pays no extra
   round trip.
   A creation's ring only brings tasks: a dispatcher whose last round found no agent able to take work
   skips it (Dispatcher.new_work), since nothing new can be placed before capacity changes; capacity
   that comes back rings "now", kicks the dispatcher of the worker that freed it (its writer), or falls
   due (a probe, read by that round itself). During a backlog on a full fleet each creation woke every
   worker for a round that read the whole fleet to place nothing (4.9 ms each at 10,000 agents:
   bench/full_fleet.py).
2. The worker's own writer, after it applied outcomes (writer.py): freed slots are the commonest
   reason for a round under load. The writer runs that round itself, inside the outcomes' transaction
   (dispatcher.RoundAfterOutcomes), and kicks the dispatcher only when its round did not run or was
   full; the kick costs nothing.
3. The dispatcher's clock: at the earliest time a ring announced, and at most SWEEP_INTERVAL_SECONDS
   after the last round. That covers every ring nobody heard (a worker starting or reconnecting; the
   Bell also kicks once each time it starts listening) and anything a lost transaction never rang for.

That is all: no Redis doorbell and no delayed Celery message (both were removed: a ring costs no Redis
round trip, can never announce a rolled-back change, and carries its own due time). Notification
channels belong to a database, so test runs, the benchmark and `make run` never ring each other.
Delayed rings assume the clocks of web and worker hosts agree (NTP); a skew moves a retry's wake-up
by the skew, and the dispatcher's clock bounds the harm.
"""

import logging
import math
import threading

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

from orchestrator_project.prepared import prepared_cursor

logger = logging.getLogger(__name__)

CHANNEL = "orchestrator_dispatch"
NEW_WORK = "new"  # a creation's payload: tasks came, capacity did not
# Ring now, as a statement of its own.
RING_SQL = f"SELECT pg_notify('{CHANNEL}', '')"
# A creation's ring, folded into another statement (the task INSERT selects it).
RING_NEW_WORK_SQL = f"SELECT pg_notify('{CHANNEL}', '{NEW_WORK}')"
_RING_AT_SQL = f"SELECT pg_notify('{CHANNEL}', %s)"


def ring():
    """Wake every dispatcher when the current transaction commits (at once in autocommit)."""
    with prepared_cursor() as cursor:
        cursor.execute(RING_SQL)


def ring_new_work():
    """Tasks were created: wake every dispatcher that may have room for them, on commit."""
    with prepared_cursor() as cursor:
        cursor.execute(RING_NEW_WORK_SQL)


def ring_at(when):
    """Wake every dispatcher at `when` (a datetime), once the current transaction commits. Times are
    rounded up to the tenth of a second, so a batch of retries due close together rings once."""
    with prepared_cursor() as cursor:
        cursor.execute(_RING_AT_SQL, [str(math.ceil(when.timestamp() * 10))])


def due_time(payload):
    """The epoch seconds a ring's payload announces, or None for "now" (and for anything unreadable)."""
    if not payload or payload == NEW_WORK:
        return None
    try:
        return int(payload) / 10
    except ValueError:
        logger.warning("ignoring a dispatch ring with payload %r", payload[:40])
        return None


class Bell(threading.Thread):
    """LISTENs on CHANNEL and tells the dispatcher about every ring: kick now, or wake at a due time.

    Kicks once each time it starts listening: rings sent while it was not are gone, and whatever they
    announced is waiting in Postgres. Reconnects with backoff for as long as it runs. LISTEN needs a
    session of its own: behind a transaction-mode pooler, point the workers' DATABASE_URL at Postgres.
    """

    def __init__(self, dispatcher):
        super().__init__(name="orchestrator-dispatch-bell", daemon=True)
        self.dispatcher = dispatcher
        self.backend_pid = None  # which Postgres session listens, for operators and tests
        self._stopped = threading.Event()

    def stop(self):
        """Stop listening; the session closes within a second."""
        self._stopped.set()

    def run(self):
        delay = 0.1
        while not self._stopped.is_set():
            try:
                self._listen()
            except Exception:
                logger.warning("dispatch bell lost its Postgres session; retrying in %.1f s", delay)
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.1

    def _listen(self):
        params = connections[DEFAULT_DB_ALIAS].get_connection_params()
        with psycopg.connect(**params, autocommit=True) as listener:
            listener.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = listener.info.backend_pid
            self.dispatcher.kick()
            while not self._stopped.is_set():
                for notice in listener.notifies(timeout=1.0):
                    if notice.payload == NEW_WORK:
                        self.dispatcher.new_work()
                        continue
                    when = due_time(notice.payload)
                    if when is None:
                        self.dispatcher.kick()
                    else:
                        self.dispatcher.wake_at(when)


def on_capacity_freed(**_):
    """Agents can take work again (agents.signals.capacity_freed): ring, inside their transaction."""
    ring()
