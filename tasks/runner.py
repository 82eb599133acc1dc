"""Agent calls in flight, without blocking worker processes.

Each worker process has one runner: an asyncio event loop on a background thread keeps hundreds of
agent calls open at once (AI agents take seconds to minutes), and one writer thread applies what
they produce to Postgres in batches: a burst of N answers costs one transaction, not N.

Celery jobs only claim work and hand it over (`submit`), so a worker thread is free again in
milliseconds. If the process dies, nothing is lost: the leases of its tasks expire and the sweep
hands them out again; the attempt number fences off anything the dead process might still say.
"""

import asyncio
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from uuid import UUID

import psycopg
import uvloop
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.utils import InterfaceError
from django.utils import timezone

from agents import egress
from orchestrator_project.logging import log_context
from orchestrator_project.prepared import prepared_cursor

from . import agent_client
from .dispatch import SPEC_COLUMNS, claim
from .models import EventKind, TaskStatus
from .outcomes import Outcome, apply_outcomes
from .transitions import TransitionLog
from .wake import CREATED_CHANNEL, clear_wake_flag, doorbell_channel

logger = logging.getLogger(__name__)
WRITE_BATCH_MAX = 500


@dataclass
class SentMark:
    task_id: UUID
    attempt: int
    at: float  # time.time() when the request went out


_SPECS_SQL = f"""
    SELECT {SPEC_COLUMNS}
    FROM tasks_task t JOIN agents_agent a ON a.agent_id = t.assigned_agent_id
    WHERE t.task_id = ANY(%s::uuid[]) AND t.status = 'assigned'
"""


def spec_from_row(row):
    task_id, attempt, agent_id, task_type, description, input_data, capabilities = row[:7]
    priority, deadline, timeout_seconds, endpoint, signing_secret = row[7:]
    task = SimpleNamespace(
        task_id=task_id,
        type=task_type,
        description=description,
        input_data=json.loads(input_data),  # Django leaves jsonb as text
        required_capabilities=capabilities,
        priority=priority,
        deadline=deadline,
    )
    return agent_client.CallSpec(
        task_id=task_id,
        attempt=attempt,
        agent_id=agent_id,
        endpoint=endpoint,
        signing_secret=signing_secret,
        timeout_seconds=timeout_seconds,
        body=agent_client.build_body(task, attempt),
    )


def load_specs(assignments):
    """CallSpecs for fresh assignments: from what the claim read, or else in one query."""
    if all(a.call is not None for a in assignments):
        return [spec_from_row(a.call) for a in assignments]
    wanted = {UUID(str(a.task_id)): a.attempt for a in assignments}  # Celery hands ids over as text
    with prepared_cursor() as cursor:
        cursor.execute(_SPECS_SQL, [list(wanted)])
        rows = cursor.fetchall()
    # An attempt other than the one asked for was superseded since.
    return [spec_from_row(row) for row in rows if wanted.get(row[0]) == row[1]]


def mark_sent(marks):
    """assigned -> running for the given attempts, in a transaction of their own."""
    if not marks:
        return
    with transaction.atomic():
        log = TransitionLog()
        record_sent(marks, timezone.now(), log)
        log.flush()


def record_sent(marks, now, log):
    """assigned -> running for the given attempts: one UPDATE for the whole batch, events into `log`.
    Runs inside the caller's transaction."""
    if not marks:
        return
    with prepared_cursor() as cursor:
        cursor.execute(
            """UPDATE tasks_task AS t SET status = 'running', started_at = %s, updated_at = %s
               FROM unnest(%s::uuid[], %s::int[]) AS v(task_id, attempt)
               WHERE t.task_id = v.task_id AND t.attempts = v.attempt AND t.status = 'assigned'
               RETURNING t.task_id, t.attempts, t.assigned_agent_id, t.priority, t.type,
                         t.required_capabilities, t.created_at""",
            [now, now, [m.task_id for m in marks], [m.attempt for m in marks]],
        )
        rows = cursor.fetchall()
    for task_id, attempt, agent_id, priority, task_type, capabilities, created_at in rows:
        log.add(
            task_id=task_id,
            kind=EventKind.SENT,
            status=TaskStatus.RUNNING,
            attempt=attempt,
            agent_id=agent_id,
            at=now,
            priority=priority,
            task_type=task_type,
            capabilities=capabilities,
            dispatch_latency_seconds=(now - created_at).total_seconds(),
        )


MAX_ROUNDS_PER_KICK = 50


class Dispatcher(threading.Thread):
    """Runs dispatch rounds in this worker whenever it is kicked (by a wake-up message, or by the writer
    right after it freed agent slots, so a completion leads to the next dispatch without a broker hop)
    and at least every SWEEP_INTERVAL_SECONDS."""

    def __init__(self, runner):
        super().__init__(name="orchestrator-dispatcher", daemon=True)
        self.runner = runner
        self._kicked = threading.Event()
        self.rounds = 0

    def kick(self):
        self._kicked.set()

    def run(self):
        while True:
            # Kicks make dispatch immediate; the timeout makes it independent of the broker: should this
            # worker's Celery consumer be wedged (seen after Redis was lost), it still claims due work.
            self._kicked.wait(timeout=settings.SWEEP_INTERVAL_SECONDS)
            self._kicked.clear()
            try:
                close_old_connections()
                self.dispatch_rounds()
            except (OperationalError, InterfaceError):
                logger.warning("database unavailable for dispatch; the sweep will retry", exc_info=True)
                connection.close()
            except Exception:
                logger.exception("dispatch round failed")

    def dispatch_rounds(self):
        """Claim and hand over work until nothing more can be dispatched now."""
        if not self.runner.accepting:
            return 0
        # Clear first: a task committed after this point is either seen by the rounds below (which begin
        # after the clear) or raises the flag again and rings the doorbell.
        clear_wake_flag()
        dispatched = 0
        for _ in range(MAX_ROUNDS_PER_KICK):
            if not self.runner.accepting:
                break  # shutting down: claiming now would strand tasks until their leases expire
            assignments = claim()
            self.rounds += 1
            if assignments:
                dispatched += self.runner.submit(load_specs(assignments))
            if len(assignments) < settings.DISPATCH_BATCH_SIZE:
                # A short round took everything it could: the rest is waiting for capacity (freed
                # capacity kicks again) or is locked by another dispatcher.
                break
        return dispatched


class _Bell(threading.Thread):
    """Kicks the dispatcher on every ring it hears, and once after every (re)connection: rings sent
    while it was not listening are gone, and whatever they announced is still waiting in Postgres.
    Reconnects with backoff for as long as it runs."""

    source = ""  # what it listens to, for the log

    def __init__(self, dispatcher, name):
        super().__init__(name=name, daemon=True)
        self.dispatcher = dispatcher
        self._stopped = threading.Event()

    def stop(self):
        """Stop listening, once rings() returns (the Postgres bell checks every second)."""
        self._stopped.set()

    def rings(self):
        """Yield once listening, then once per ring."""
        raise NotImplementedError

    def run(self):
        delay = 0.1
        while not self._stopped.is_set():
            try:
                for _ring in self.rings():
                    delay = 0.1
                    self.dispatcher.kick()
            except Exception:
                logger.warning("doorbell lost its %s connection; retrying in %.1f s", self.source, delay)
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)


class Doorbell(_Bell):
    """Rings on wake_dispatch() (Redis pub/sub, tasks/wake.py)."""

    source = "Redis"

    def __init__(self, dispatcher):
        super().__init__(dispatcher, "orchestrator-doorbell")

    def rings(self):
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, health_check_interval=10)
        with client.pubsub() as pubsub:
            pubsub.subscribe(doorbell_channel())
            yield from pubsub.listen()  # the subscribe confirmation first


class PostgresDoorbell(_Bell):
    """Rings whenever a transaction that created tasks commits: the creating statement sends a NOTIFY
    on wake.CREATED_CHANNEL, and this thread LISTENs on a connection of its own. LISTEN needs a session
    of its own: behind a transaction-mode pooler, point DATABASE_URL of the workers at Postgres itself.
    """

    source = "Postgres"

    def __init__(self, dispatcher):
        super().__init__(dispatcher, "orchestrator-pg-doorbell")
        self.backend_pid = None

    def rings(self):
        params = connections[DEFAULT_DB_ALIAS].get_connection_params()
        with psycopg.connect(**params, autocommit=True) as listener:
            listener.execute(f"LISTEN {CREATED_CHANNEL}")
            self.backend_pid = listener.info.backend_pid  # which session it is, for operators
            yield
            while not self._stopped.is_set():
                yield from listener.notifies(timeout=1.0)


class Writer(threading.Thread):
    """Applies SentMarks and Outcomes in arrival order, batching whatever has queued up meanwhile."""

    def __init__(self, on_capacity_freed):
        super().__init__(name="orchestrator-writer", daemon=True)
        self.on_capacity_freed = on_capacity_freed
        self.queue = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()

    def put(self, item):
        self._idle.clear()
        self.queue.put(item)

    def run(self):
        while True:
            batch = [self.queue.get()]
            while len(batch) < WRITE_BATCH_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)
            if self.queue.empty():
                self._idle.set()

    def _write(self, batch):
        marks = [item for item in batch if isinstance(item, SentMark)]
        outcomes = [item for item in batch if isinstance(item, Outcome)]
        delay = 0.1
        while True:
            try:
                close_old_connections()
                # A task's mark is always queued before its outcome, so marks go first; with outcomes,
                # in the same transaction.
                if outcomes:
                    apply_outcomes(outcomes, before=partial(record_sent, marks) if marks else None)
                    self.on_capacity_freed()
                else:
                    mark_sent(marks)
                return
            except (OperationalError, InterfaceError):
                # Postgres restarting: keep the batch and try again; guarded updates make it idempotent.
                logger.warning("database unavailable; retrying %d writes in %.1f s", len(batch), delay)
                connection.close()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                marks = []  # a mark that could not be written is superseded by the outcome
            except Exception:
                logger.exception(
                    "dropping %d writes after an unexpected error; leases will recover them", len(batch)
                )
                return

    def wait_idle(self, timeout):
        return self._idle.wait(timeout)


class Runner:
    def __init__(self):
        # uvloop: the loop runs every agent call's I/O, and the stock loop's per-callback cost was a
        # visible share of a busy worker's CPU.
        self.loop = uvloop.new_event_loop()
        self.dispatcher = Dispatcher(self)
        self.doorbell = Doorbell(self.dispatcher)
        self.creations_doorbell = PostgresDoorbell(self.dispatcher)
        self.writer = Writer(on_capacity_freed=self.dispatcher.kick)
        self._in_flight = {}  # (task_id, attempt) -> asyncio.Task; changed on the loop's thread only
        self._handed_over = 0  # submitted, not yet started by the loop
        self._lock = threading.Lock()
        self._accepting = True
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name="orchestrator-agent-calls", daemon=True)

    def start(self):
        self.writer.start()
        self.dispatcher.start()
        self.doorbell.start()
        self.creations_doorbell.start()
        self._thread.start()
        self._ready.wait()
        return self

    def _run_loop(self):
        asyncio.set_event_loop(self.loop)
        self.client = self.loop.run_until_complete(_open_client())
        self.semaphore = asyncio.Semaphore(settings.AGENT_CALL_CONCURRENCY)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    @property
    def accepting(self):
        return self._accepting

    @property
    def in_flight(self):
        return len(self._in_flight) + self._handed_over

    def submit(self, specs):
        """Start the calls of one claimed batch: a single wake-up of the loop, whatever its size."""
        if not self._accepting:
            return 0
        if specs:
            with self._lock:
                self._handed_over += len(specs)
            self.loop.call_soon_threadsafe(self._start_calls, specs)
        return len(specs)

    def _start_calls(self, specs):
        for spec in specs:
            key = (spec.task_id, spec.attempt)
            task = self.loop.create_task(self._call(spec))
            self._in_flight[key] = task
            task.add_done_callback(lambda _t, key=key: self._in_flight.pop(key, None))
        with self._lock:  # after they count as in flight, so that in_flight never dips meanwhile
            self._handed_over -= len(specs)

    async def _call(self, spec):
        # Each call runs in its own asyncio task, so the log context stays with this call only.
        with log_context(task_id=str(spec.task_id), attempt=spec.attempt):
            async with self.semaphore:
                self.writer.put(SentMark(spec.task_id, spec.attempt, time.time()))
                outcome = await agent_client.call(self.client, spec)
                self.writer.put(outcome)

    def shutdown(self, grace):
        """Stop taking work; let calls in flight finish for up to `grace` seconds, hand back the rest."""
        self._accepting = False
        self.creations_doorbell.stop()  # its session closes within a second; nothing is claimed now
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop).result(timeout=10)
        if leftover:
            from .handback import hand_back_attempts

            close_old_connections()
            hand_back_attempts(leftover, reason="worker shutting down")
        self.writer.wait_idle(max(1.0, deadline - time.monotonic()))

    async def _cancel_all(self):
        leftover = list(self._in_flight.items())
        for _, task in leftover:
            task.cancel()
        return [key for key, _ in leftover]


async def _open_client():
    return egress.new_async_client()  # aiohttp binds a session to the loop running when it opens


_runner = None
_runner_lock = threading.Lock()


def get_runner():
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = Runner().start()
        return _runner


def current_runner():
    return _runner
