"""Fan-out of state changes to WebSocket clients and to subscribers (the shared metrics), after commit.

Whichever process made the change (web or worker) publishes to the Redis channel layer, so clients
connected to any web instance receive it. Calls only queue: every 20 ms a background thread sends what
gathered as one channel-layer message per group and hands the task transitions to the subscribers
(monitoring's metrics recorder subscribes when its app is ready). Both are best effort: the database
already holds the truth, and a client that reconnects gets a fresh snapshot.

What callers pass is built by `messages` (task_transition, agent_change).
"""

import asyncio
import logging
import os
import threading
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

TASKS_GROUP = "tasks"
AGENTS_GROUP = "agents"
WORKFLOW_RUNS_GROUP = "workflow-runs"
# A stuck Redis must not hold the publisher for long.
SEND_TIMEOUT_SECONDS = 1.0
# How long the publisher gathers events before sending them as one message: short against the 250 ms
# delivery budget, long enough that a burst of commits becomes one channel-layer send.
FLUSH_INTERVAL_SECONDS = 0.02
# Beyond this many waiting events (Redis down for a long time) the oldest are dropped: live updates are
# best effort, and a reconnecting client gets a fresh snapshot anyway.
MAX_BUFFERED = 50_000

logger = logging.getLogger(__name__)


async def _await(coroutine):
    return await coroutine


async def _group_send(layer, group, message):
    await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT_SECONDS)


def _send(group, message, run):
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        run(_group_send(layer, group, message))
    except Exception:  # live updates are best effort; the database already holds the truth
        logger.warning("could not publish to %s", group, exc_info=True)


_task_subscribers = []


def subscribe_task_transitions(receiver):
    """Call `receiver(transitions)` with every batch of task transitions this process publishes, on
    the publisher's thread. A receiver that raises is logged and does not stop the live updates.
    Returns a function that unsubscribes it."""
    if receiver not in _task_subscribers:
        _task_subscribers.append(receiver)
    return lambda: _task_subscribers.remove(receiver) if receiver in _task_subscribers else None


def _deliver(tasks, agents, run, workflow_runs=(), handed=None):
    for receiver, items in (handed or {}).items():
        try:
            receiver(items)
        except Exception:  # best effort, like the rest: never let one stop the live updates
            logger.warning("work handed to the publisher failed", exc_info=True)
    if tasks:
        for receiver in _task_subscribers:
            try:
                receiver(tasks)
            except Exception:  # never let a subscriber (metrics) stop the live updates
                logger.warning("a subscriber of task transitions failed", exc_info=True)
        _send(TASKS_GROUP, {"type": "task.batch", "events": tasks}, run)
    if agents:
        _send(AGENTS_GROUP, {"type": "agent.batch", "events": agents}, run)
    if workflow_runs:
        _send(WORKFLOW_RUNS_GROUP, {"type": "workflow_run.batch", "events": workflow_runs}, run)


class _Publisher:
    """The process's outbox: callers append and return at once; one daemon thread sends what gathered.

    Publishing used to cost each commit several Redis round trips on the committing thread (under Daphne,
    the one thread all sync views share). Now a burst of N commits costs one metrics pipeline and one
    group_send, and nobody waits for Redis.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._tasks, self._agents, self._workflow_runs = [], [], []
        self._handed = {}  # receiver -> the items handed to it since the last send
        self._pending = threading.Event()
        self._owner_pid = None

    def add(self, tasks=(), agents=(), workflow_runs=(), handed=None):
        with self._lock:
            self._tasks.extend(tasks)
            self._agents.extend(agents)
            self._workflow_runs.extend(workflow_runs)
            if handed is not None:
                receiver, items = handed
                self._handed.setdefault(receiver, []).extend(items)
            for buffer in (self._tasks, self._agents, self._workflow_runs, *self._handed.values()):
                del buffer[:-MAX_BUFFERED]
            if self._owner_pid != os.getpid():  # first use in this process (or after a fork)
                self._owner_pid = os.getpid()
                threading.Thread(target=self._run, name="orchestrator-publisher", daemon=True).start()
        self._pending.set()

    def _take(self):
        with self._lock:
            taken = self._tasks, self._agents, self._workflow_runs, self._handed
            self._tasks, self._agents, self._workflow_runs, self._handed = [], [], [], {}
        return taken

    def _run(self):
        # Its own event loop: channels-redis keeps its connections per loop.
        loop = asyncio.new_event_loop()
        while True:
            self._pending.wait()
            time.sleep(FLUSH_INTERVAL_SECONDS)
            self._pending.clear()
            tasks, agents, workflow_runs, handed = self._take()
            _deliver(tasks, agents, loop.run_until_complete, workflow_runs, handed)

    def flush(self):
        """Send what is waiting now, from the calling thread (tests, and before a process exits)."""
        tasks, agents, workflow_runs, handed = self._take()
        _deliver(tasks, agents, async_to_sync(_await), workflow_runs, handed)


_publisher = _Publisher()


def publish_task_transitions(transitions):
    """Queue a batch of task transitions for the `tasks` group and the shared metrics. Never blocks."""
    if transitions:
        _publisher.add(tasks=transitions)


def publish_agent_changes(changes):
    """Queue a batch of agent changes (status, load, circuit) for the `agents` group. Never blocks."""
    if changes:
        _publisher.add(agents=changes)


def publish_workflow_run_changes(changes):
    """Queue workflow run and step changes for the `workflow-runs` group. Never blocks."""
    if changes:
        _publisher.add(workflow_runs=changes)


def hand_off(receiver, items):
    """Call `receiver(items)` on the publisher's thread at its next send, with the items of every
    hand_off to that receiver meanwhile in one list: work after a commit that need not hold up the
    committing thread (a request, or the writer whose next steps' calls wait for it). Never blocks;
    best effort, like the live updates."""
    if items:
        _publisher.add(handed=(receiver, list(items)))


def flush():
    _publisher.flush()
