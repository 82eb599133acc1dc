"""The writer: one thread per worker that applies what agent calls produce, in batches.

Calls put a SentMark when their request goes out and an Outcome when it comes back; the writer applies
whatever has queued up meanwhile in one transaction, so a burst of N answers costs one commit, not N.
"""

import logging
import queue
import threading
import time
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.utils import timezone

from ..models import EventKind
from ..transitions import Step, move
from .dispatcher import RoundAfterOutcomes
from .outcome import Outcome
from .outcomes import apply_outcomes

logger = logging.getLogger(__name__)
WRITE_BATCH_MAX = 500
_STOP = object()  # queued by stop(): the writer's last item


@dataclass
class SentMark:
    """The request of an attempt went out: assigned -> running."""

    task_id: UUID
    attempt: int
    agent_id: UUID


def record_sent(marks, now):
    """assigned -> running for the given attempts, in one statement, inside the caller's transaction."""
    steps = [Step(mark.task_id, mark.attempt, mark.agent_id) for mark in marks]
    move(EventKind.SENT, steps, now=now, assignments="started_at = %(now)s")


class Writer(threading.Thread):
    """Applies SentMarks and Outcomes in arrival order, batching whatever has queued up meanwhile."""

    def __init__(self, dispatcher):
        super().__init__(name="orchestrator-writer", daemon=True)
        self.dispatcher = dispatcher
        self.queue = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()

    def put(self, item):
        self._idle.clear()
        self.queue.put(item)

    def stop(self):
        """Write what is queued, then close the thread's database session and end: a runner that shut
        down would otherwise keep that session open for as long as its process lives."""
        self.queue.put(_STOP)

    def run(self):
        while True:
            batch = [self.queue.get()]
            while len(batch) < WRITE_BATCH_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in batch)
            batch = [item for item in batch if item is not _STOP]
            if batch:
                self._write(batch)
            if stopping:
                connection.close()
                self._idle.set()
                return
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
                    before = partial(record_sent, marks) if marks else None
                    # No ring: the freed slots are given out by a round in the same transaction.
                    dispatch = RoundAfterOutcomes(self.dispatcher)
                    apply_outcomes(outcomes, before=before, after=dispatch, ring=False)
                    dispatch.finish()
                else:
                    record_sent(marks, timezone.now())  # one statement: atomic by itself
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
