"""The relay: publishes the outbox in commit order, at least once, one leader at a time.

- **One leader.** Each relay holds a session-level Postgres advisory lock on its own connection; a second
  relay waits for it. A leader that dies (or loses its connection) drops the lock with its session, and
  the next one carries on from what is marked published.
- **Commit order, nothing skipped.** A row is published only once its transaction is older than every
  transaction still running (`txid < pg_snapshot_xmin`): by then no other row can appear before it, so
  a slow transaction's rows are never jumped over and wait at most for that transaction. Rows go in
  (txid, position) order; an entity's events always in its sequence order (see `_in_entity_order`).
- **Marked on delivery.** Rows are marked published only for what the broker acknowledged; a crash
  between the two sends that batch again (consumers dedupe on ce_id).
- **Backoff.** While the sink is down the relay retries the same batch, waiting 0.1 s doubling up to
  EVENT_RELAY_BACKOFF_MAX; while Postgres is down it reconnects the same way.
- **Replays** (POST /api/v1/events/replay) are worked off between live batches, a chunk at a time. With
  none in progress the relay looks for a new one every REPLAY_LOOK_SECONDS, not at every poll.
"""

import hashlib
import logging
import threading
import time
from collections import defaultdict

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from orchestrator_project.pg_arrays import array_literal

from . import stats
from .cloudevents import Event
from .models import OutboxEvent, Replay
from .sinks import SinkUnavailable

logger = logging.getLogger(__name__)

# Replays are rare, and looking for one at every poll (20 a second) was half of what an idle relay asked
# of Postgres; a replay waits at most this long to start.
REPLAY_LOOK_SECONDS = 1.0
LOCK_KEY = int.from_bytes(hashlib.sha256(b"orchestrator.outbox.relay").digest()[:8], "big", signed=True)
_TABLE = OutboxEvent._meta.db_table
# The payload as the JSON text Postgres holds: sent as it is, never parsed and dumped again.
_EVENT_COLUMNS = "position, id, aggregatetype, aggregateid, type, payload::text, sequence, created_at"

# The next rows to publish: the oldest visible ones (`oldest`), with every other visible event of the
# same entities, except those after an event of theirs that is not visible yet. That happens when a
# transaction took its xid before another one that then changed the same entity first: the later event
# can be visible before the earlier one. Holding back only what follows an invisible event keeps each
# entity's order without ever waiting on a row that sorts later (an entity's earlier events are pulled
# into the batch wherever they sort).
#
# Only rows from %(floor)s on are looked at (see Relay._floor): publishing a row takes it out of the
# partial index outbox_unpublished but leaves its entry there until VACUUM, and scanning the dead
# entries of the last minute of events cost this statement 4 ms per batch at 250 events/s, a quarter of
# Postgres' CPU in the workflow benchmark. Each row returns, after the event, the last txid of `oldest`
# and whether any row was held back: what the next floor may be.
_NEXT_BATCH = f"""
    WITH horizon AS (
        SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
    ), oldest AS (
        SELECT aggregateid, txid FROM {_TABLE}, horizon
        WHERE published_at IS NULL AND txid >= %(floor)s::xid8 AND txid < horizon.xmin
        ORDER BY txid, position
        LIMIT %(batch)s
    ), pending AS (
        SELECT o.*, o.txid < horizon.xmin AS visible FROM {_TABLE} o, horizon
        WHERE o.published_at IS NULL AND o.txid >= %(floor)s::xid8
          AND o.aggregateid IN (SELECT DISTINCT aggregateid FROM oldest)
    ), held AS (
        SELECT aggregateid, min(sequence) AS sequence FROM pending WHERE NOT visible GROUP BY aggregateid
    )
    SELECT {", ".join(f"p.{column.strip()}" for column in _EVENT_COLUMNS.split(","))},
           (SELECT txid FROM oldest ORDER BY txid DESC LIMIT 1)::text,
           EXISTS (SELECT 1 FROM pending q JOIN held h USING (aggregateid)
                   WHERE q.visible AND q.sequence >= h.sequence)
    FROM pending p LEFT JOIN held h USING (aggregateid)
    WHERE p.visible AND (h.sequence IS NULL OR p.sequence < h.sequence)
    ORDER BY p.txid, p.position"""

# Whether `_NEXT_BATCH` would find anything: what an idle relay asks at each poll, 20 times a second.
# `_NEXT_BATCH` took Postgres 0.9 ms to plan and 0.2 ms to run when there was nothing to publish: about
# 2 % of a core for an idle `make run`. This one is prepared once per session. `_NEXT_BATCH` itself is
# planned for its values: prepared, its generic plan cost Postgres 2.5 ms more per workflow run under
# load (bench.workflows, 13.3 against 10.8 ms) than the planning it saved.
_ANY_READY = f"""
    SELECT EXISTS (SELECT 1 FROM {_TABLE}
                   WHERE published_at IS NULL AND txid >= %(floor)s::xid8
                     AND txid < pg_snapshot_xmin(pg_current_snapshot()))"""

_MARK_PUBLISHED = (
    f"UPDATE {_TABLE} SET published_at = statement_timestamp() WHERE position = ANY(%s::bigint[])"
)

_NEXT_REPLAY = f"""
    SELECT id, since, until, aggregateid, after_position, until_position FROM {Replay._meta.db_table}
    WHERE finished_at IS NULL ORDER BY id LIMIT 1"""
# Replays go by position: an entity's events were written in its sequence order (each under the
# entity's row lock), so position order is its order too.
_REPLAY_CHUNK = f"""
    SELECT {_EVENT_COLUMNS} FROM {_TABLE}
    WHERE position > %(after)s AND position <= %(until_position)s AND published_at IS NOT NULL
      AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
      AND (%(entity)s::uuid IS NULL OR aggregateid = %(entity)s)
    ORDER BY position LIMIT %(batch)s"""
_REPLAY_PROGRESS = f"""
    UPDATE {Replay._meta.db_table} SET after_position = %(after)s, published = published + %(count)s,
        finished_at = CASE WHEN %(done)s THEN statement_timestamp() END
    WHERE id = %(id)s"""


def _in_entity_order(events):
    """The batch in (txid, position) order, except that each entity's events take that entity's places
    in sequence order: txid order is not commit order, the entity's sequence is."""
    per_entity = defaultdict(list)
    for event in events:
        per_entity[event.aggregateid].append(event)
    queues = {entity: iter(sorted(group, key=lambda e: e.sequence)) for entity, group in per_entity.items()}
    return [next(queues[event.aggregateid]) for event in events]


def _connect():
    """The relay's own session. Server-side binding, so that the idle poll (`_ANY_READY`) can be prepared;
    Django's cursor binds values on the client, and Postgres parses and plans such a statement anew at
    every execution."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    # Django's prepare_threshold stays: never by count, so only the statements asked for are prepared,
    # and with DB_PREPARED_STATEMENTS=false (a transaction-mode pooler) none at all.
    params["cursor_factory"] = psycopg.Cursor
    return psycopg.connect(**params, autocommit=True)


class Backoff:
    def __init__(self, first=0.1):
        self.first = first
        self.delay = first

    def next(self):
        delay, self.delay = self.delay, min(self.delay * 2, settings.EVENT_RELAY_BACKOFF_MAX)
        return delay

    def reset(self):
        self.delay = self.first


class Relay:
    def __init__(self, sink, *, batch=None, poll=None, stop=None):
        self.sink = sink
        self.batch = batch or settings.EVENT_RELAY_BATCH
        self.poll = poll or settings.EVENT_RELAY_POLL_SECONDS
        self.stop = stop or threading.Event()
        self.leading = threading.Event()
        self.stats = stats.Recorder()
        # Every unpublished row has a txid at least this (a text: psycopg has no xid8 type). Once a
        # batch is published whole and held nothing back, every row of a txid below its `oldest` part's
        # last one is published (that part is the prefix, in txid order, of the rows of finished
        # transactions) and every transaction still to finish has a higher txid, so the floor moves up
        # to there.
        self._floor = "0"
        self._replay_look_at = 0.0  # time.monotonic() from which to look for a replay again
        # The last poll found nothing: ask the cheap question first (_ANY_READY). A busy relay does not.
        self._idle = False

    def run(self):
        """Until `stop` is set: connect, wait to lead, publish. Reconnects with backoff."""
        backoff = Backoff()
        try:
            while not self.stop.is_set():
                try:
                    with _connect() as session:
                        backoff.reset()
                        self._lead(session)
                except psycopg.OperationalError:
                    self.leading.clear()
                    logger.warning("relay lost its database connection; reconnecting", exc_info=True)
                    self.stop.wait(backoff.next())
        finally:
            self.leading.clear()
            self.sink.close()
            self.stats.close()

    def _lead(self, session):
        waited = False
        while not session.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
            if not waited:
                logger.info("another relay is publishing; this one waits to take over")
                waited = True
            if self.stop.wait(1.0):
                return
        logger.info("relay is publishing events through %s", type(self.sink).__name__)
        self.leading.set()
        self._floor = "0"  # a new leader looks at every unpublished row once
        self._replay_look_at = 0.0
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                busy = self._publish_next(session) | self._replay_next(session)
            except SinkUnavailable as exc:
                self.stats.add(failures=1)
                delay = backoff.next()
                logger.warning("event sink unavailable (%s); retrying in %.1f s", exc, delay)
                self.stop.wait(delay)
                continue
            backoff.reset()
            if not busy:
                self.stop.wait(self.poll)

    def _publish_next(self, session):
        floor, prepare = {"floor": self._floor}, settings.DB_PREPARED_STATEMENTS
        if self._idle and not session.execute(_ANY_READY, floor, prepare=prepare).fetchone()[0]:
            return False
        rows = session.execute(_NEXT_BATCH, {**floor, "batch": self.batch}, prepare=False).fetchall()
        self._idle = not rows
        if not rows:
            return False
        last_oldest_txid, held_back = rows[0][-2:]
        events = _in_entity_order([Event(*row[:-2]) for row in rows])
        acknowledged = self.sink.publish(events)
        session.execute(_MARK_PUBLISHED, [array_literal(acknowledged)], prepare=False)
        self.stats.add(published=len(acknowledged))
        if len(acknowledged) < len(events):
            # The rest goes again, after the backoff: a message the broker keeps refusing must not spin.
            missing = len(events) - len(acknowledged)
            raise SinkUnavailable(f"{missing} of {len(events)} events were not acknowledged")
        if not held_back:
            self._floor = last_oldest_txid
        return True

    def _replay_next(self, session):
        if time.monotonic() < self._replay_look_at:
            return False
        replay = session.execute(_NEXT_REPLAY, prepare=settings.DB_PREPARED_STATEMENTS).fetchone()
        if replay is None:
            self._replay_look_at = time.monotonic() + REPLAY_LOOK_SECONDS
            return False
        replay_id, since, until, entity, after, until_position = replay
        rows = session.execute(
            _REPLAY_CHUNK,
            {
                "after": after,
                "until_position": until_position,
                "since": since,
                "until": until,
                "entity": entity,
                "batch": self.batch,
            },
        ).fetchall()
        events = [Event(*row) for row in rows]
        if events and len(self.sink.publish(events)) < len(events):
            raise SinkUnavailable("part of a replay chunk was not acknowledged")
        session.execute(
            _REPLAY_PROGRESS,
            {
                "id": replay_id,
                "after": events[-1].position if events else until_position,
                "count": len(events),
                "done": len(events) < self.batch,
            },
        )
        self.stats.add(replayed=len(events))
        return True
