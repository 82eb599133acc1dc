"""Agent calls in flight, without blocking worker processes.

Each worker process has one runner. An asyncio event loop on a background thread keeps hundreds of
agent calls open at once (AI agents take seconds to minutes); beside it run the dispatcher (claims
work and hands it over with `submit`), its bell (wake.py) and the writer (applies what the calls
produce, in batches). Celery jobs never wait for an agent: a worker thread is free again in
milliseconds.

If the process dies, nothing is lost: the leases of its tasks expire and the sweep hands them out
again; the attempt number fences off anything the dead process might still say.
"""

import asyncio
import logging
import threading
import time

import uvloop
from django.conf import settings
from django.db import close_old_connections

from orchestrator_project import egress
from orchestrator_project.logging import log_context

from . import agent_calls, cancel_notice
from .dispatcher import Dispatcher
from .handback import hand_back_attempts
from .wake import Bell
from .writer import SentMark, Writer

logger = logging.getLogger(__name__)


class Runner:
    def __init__(self):
        # uvloop: the loop runs every agent call's I/O, and the stock loop's per-callback cost was a
        # visible share of a busy worker's CPU.
        self.loop = uvloop.new_event_loop()
        self.dispatcher = Dispatcher(self)
        self.bell = Bell(self.dispatcher)
        self.writer = Writer(self.dispatcher)
        self._in_flight = {}  # (task_id, attempt) -> asyncio.Task; changed on the loop's thread only
        self._handed_over = 0  # submitted, not yet started by the loop
        self._lock = threading.Lock()
        self._accepting = True
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name="orchestrator-agent-calls", daemon=True)

    def start(self):
        self.writer.start()
        self.dispatcher.start()
        self.bell.start()
        self._thread.start()
        self._ready.wait()
        return self

    def _run_loop(self):
        asyncio.set_event_loop(self.loop)
        self.client = self.loop.run_until_complete(_open_client())
        self.semaphore = asyncio.Semaphore(settings.AGENT_CALL_CONCURRENCY)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()
        self.loop.close()  # stopped by shutdown, after the client closed

    @property
    def accepting(self):
        return self._accepting

    @property
    def in_flight(self):
        return len(self._in_flight) + self._handed_over

    def submit(self, specs):
        """Start the calls of one claimed batch (CallSpecs): a single wake-up of the loop, whatever its
        size. Returns how many were taken."""
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
                self.writer.put(SentMark(spec.task_id, spec.attempt, spec.agent_id))
                outcome = await agent_calls.call(self.client, spec)
                self.writer.put(outcome)

    def tell_cancelled(self, notice):
        """Send a cancel notice (cancel_notice.py) from the loop; returns at once."""
        if not self._accepting:
            logger.info("not telling the agent about a cancel: the worker is stopping")
            return
        sending = asyncio.run_coroutine_threadsafe(self._tell_cancelled(notice), self.loop)
        sending.add_done_callback(_log_failure)

    async def _tell_cancelled(self, notice):
        with log_context(task_id=str(notice.task_id), attempt=notice.attempt):
            async with self.semaphore:
                await cancel_notice.send(self.client, notice)

    def shutdown(self, grace):
        """Stop taking work; let calls in flight finish for up to `grace` seconds, hand back the rest."""
        self._accepting = False
        self.bell.stop()  # its session closes within a second; nothing is claimed now
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop).result(timeout=10)
        if leftover:
            close_old_connections()
            hand_back_attempts(leftover, reason="worker shutting down")
        self.writer.wait_idle(max(1.0, deadline - time.monotonic()))
        self.writer.stop()
        self.dispatcher.stop()
        asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        for thread in (self.writer, self.dispatcher, self._thread):
            thread.join(timeout=5)

    async def _cancel_all(self):
        leftover = list(self._in_flight.items())
        for _, task in leftover:
            task.cancel()
        return [key for key, _ in leftover]


def _log_failure(future):
    # send() handles everything an agent may do; anything else (a client closed under it at shutdown)
    # would otherwise vanish with the future.
    if not future.cancelled() and future.exception() is not None:
        logger.error("cancel notice failed", exc_info=future.exception())


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
