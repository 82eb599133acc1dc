"""The dispatcher: a thread in every worker that runs dispatch rounds (claim.py) when woken.

wake.py says what wakes it: a kick (a ring now, the writer's freed slots, the bell's (re)connection),
a due time a ring announced, or its own clock after SWEEP_INTERVAL_SECONDS without a round. The last
makes dispatch independent of everything else: should this worker's rings stop (a lost session), it
still claims due work.

The writer runs one round of its own, inside the transaction that applies a batch of outcomes
(`RoundAfterOutcomes`): the slots those outcomes free and the tasks a workflow made for its next
steps meet in one commit, without a hop to this thread.
"""

import functools
import heapq
import logging
import threading
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from . import wake
from .claim import claim, claim_within

logger = logging.getLogger(__name__)

MAX_ROUNDS_PER_KICK = 50
# A round that left tasks to agents other transactions held (claim.py) runs again this much later:
# a batch of outcomes commits within milliseconds.
HELD_RETRY_SECONDS = 0.02
# Due times are kept per worker until they pass; past this many (a storm of retries with jitter) the
# latest are dropped, and the dispatcher's clock picks their tasks up.
MAX_DUE_TIMES = 10_000


def may_have_left_work(assigned):
    """Whether a round that made `assigned` assignments may have left due work it could have taken.
    A short round took everything it could: the rest is waiting for capacity (freed capacity kicks
    again) or is locked by another dispatcher."""
    return assigned >= settings.DISPATCH_BATCH_SIZE


class Dispatcher(threading.Thread):
    def __init__(self, runner):
        super().__init__(name="orchestrator-dispatcher", daemon=True)
        self.runner = runner
        self._wakeup = threading.Condition()
        self._kicked = False
        self._due = []  # a heap of epoch seconds at which to run a round
        self._stopping = False
        self.rounds = 0
        # The last round found no agent able to take work, and no kick has come since: new tasks alone
        # cannot be placed (see new_work). `_kicks` counts kicks, so that a round only says so when none
        # came while it ran.
        self._fleet_full = False
        self._kicks = 0
        self._skipped = False  # a creation's ring was skipped since the last round began
        self.new_work_skipped = 0  # creations' rings skipped on a full fleet, for tests and operators

    def kick(self):
        """Run a round as soon as possible (something may have changed capacity)."""
        with self._wakeup:
            self._kicked = True
            self._fleet_full = False
            self._kicks += 1
            self._wakeup.notify()

    def new_work(self):
        """Tasks were created: run a round as soon as possible, unless the last round found every agent
        full, tripped or gone. Then nothing new can be placed before capacity changes, and whatever
        changes it rings "now" (a slot freed, an agent back, a circuit reset), kicks (the writer after
        outcomes) or falls due (a circuit's probe); the dispatcher's clock covers anything else."""
        with self._wakeup:
            if self._fleet_full:
                self.new_work_skipped += 1
                self._skipped = True
                return
            self._kicked = True
            self._wakeup.notify()

    def room_may_have_changed(self):
        """Capacity may have changed without a kick (the writer's batch of outcomes freed slots and gave
        them out itself). A creation skipped meanwhile gets its round now: its task may have committed
        after the writer's round read the queue, and before this."""
        with self._wakeup:
            self._fleet_full = False
            self._kicks += 1
            if self._skipped:
                self._kicked = True
                self._wakeup.notify()

    def _fleet_found_full(self, kicks_before, probe_at=None):
        """A round found no agent able to take work. `probe_at`: when the first tripped circuit's probe
        falls due. Its ring went out when the circuit tripped, which a worker started or reconnected
        since never heard: the round's own reading of it keeps every worker's door from outlasting it."""
        with self._wakeup:
            if self._kicks == kicks_before:
                self._fleet_full = True
            if probe_at is not None and len(self._due) < MAX_DUE_TIMES:
                heapq.heappush(self._due, probe_at.timestamp())
                self._wakeup.notify()

    def wake_at(self, when):
        """Run a round at `when` (epoch seconds)."""
        with self._wakeup:
            if len(self._due) < MAX_DUE_TIMES:
                heapq.heappush(self._due, when)
            self._wakeup.notify()

    def stop(self):
        """End the thread after the round in progress, if any."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()

    def retry_soon(self):
        """Run a round shortly: agents other transactions held left tasks pending (claim.py)."""
        self.wake_at(time.time() + HELD_RETRY_SECONDS)

    def _wait(self):
        """Until kicked, a due time passes, or SWEEP_INTERVAL_SECONDS pass. Returns the count of kicks
        as the round starts."""
        give_up = time.monotonic() + settings.SWEEP_INTERVAL_SECONDS
        with self._wakeup:
            while True:
                now = time.time()
                while self._due and self._due[0] <= now:
                    heapq.heappop(self._due)
                    self._kicked = True
                    self._fleet_full = False  # a due probe or retry: capacity may be back
                if self._kicked or self._stopping:
                    self._kicked = False
                    self._skipped = False  # this round reads every task created so far
                    return self._kicks
                timeout = give_up - time.monotonic()
                if self._due:
                    timeout = min(timeout, self._due[0] - now)
                if timeout <= 0:
                    self._fleet_full = False  # the clock: whatever nobody rang for is looked at
                    self._skipped = False
                    return self._kicks
                self._wakeup.wait(timeout)

    def run(self):
        try:
            self._run_until_stopped()
        finally:
            connection.close()  # a stopped runner leaves no idle session behind

    def _run_until_stopped(self):
        # Stopping must end the thread: a stopped runner's dispatcher, left to its clock, would keep
        # opening sessions (and logging tracebacks where it may not) for the life of the process.
        while True:
            kicks = self._wait()
            if self._stopping:
                return
            try:
                close_old_connections()
                self.dispatch_rounds(on_fleet_full=functools.partial(self._fleet_found_full, kicks))
            except (OperationalError, InterfaceError):
                logger.warning(
                    "database unavailable for dispatch; retrying on the next wake-up", exc_info=True
                )
                connection.close()
            except Exception:
                logger.exception("dispatch round failed")

    def dispatch_rounds(self, on_fleet_full=None):
        """Claim and hand over work until nothing more can be dispatched now. `on_fleet_full(probe_at)`:
        a round found no agent able to take work (claim.claim)."""
        dispatched = 0
        for _ in range(MAX_ROUNDS_PER_KICK):
            if not self.runner.accepting:
                break  # shutting down: claiming now would strand tasks until their leases expire
            assignments = claim(on_held=self.retry_soon, on_room_left=self.kick, on_fleet_full=on_fleet_full)
            self.rounds += 1
            if assignments:
                dispatched += self.runner.submit([a.call for a in assignments])
            if not may_have_left_work(len(assignments)):
                break
        return dispatched


class RoundAfterOutcomes:
    """A dispatch round at the end of the writer's transaction, after a batch of outcomes.

    A workflow step's successor is created in that transaction; claiming it there too saves the hop
    to the dispatcher's thread (a wake-up, a second transaction and its commit) that was a third of a
    chain's step-to-step time. The round is an ordinary one (the queue in priority order, SKIP LOCKED,
    agents another transaction holds planned around), so a successor never jumps the queue.

    Call it from inside the transaction (it is apply_outcomes' `after`); its calls start once that
    commits, never if it rolls back. Then `finish()`: the dispatcher is kicked when the round did not
    run (the batch fell back to one outcome at a time) or may have left work.
    """

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.handed_over = None  # how many assignments were handed over once the round committed

    def __call__(self, _batch_now):
        if not self.dispatcher.runner.accepting:
            # Shutting down: this worker places nothing, so the others must hear of the slots freed
            # (a dispatcher that found the fleet full skips creations' rings until capacity rings).
            wake.ring()
            return
        # Not the batch's time: the tasks the batch created are due from the moment they were made.
        now = timezone.now()
        assignments = claim_within(
            now=now, on_held=self.dispatcher.retry_soon, on_room_left=self.dispatcher.kick
        )
        transaction.on_commit(lambda: self._hand_over(assignments))

    def _hand_over(self, assignments):
        if assignments:
            self.dispatcher.runner.submit([a.call for a in assignments])
        self.handed_over = len(assignments)

    def finish(self):
        # The batch freed slots, now committed: a creation's ring is worth a round again, whatever this
        # round left, and whatever a round that read the fleet before the commit concluded.
        self.dispatcher.room_may_have_changed()
        if self.handed_over is None or may_have_left_work(self.handed_over):
            self.dispatcher.kick()
