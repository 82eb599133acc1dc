"""A creation's ring on a full fleet: a dispatcher whose last round found no agent able to take work
skips it (new tasks alone cannot be placed), until anything that may change capacity kicks it. During a
backlog every creation woke every worker for a round that read the whole fleet to place nothing."""

import functools
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent, CircuitState
from tasks.engine.dispatcher import Dispatcher

from .conftest import make_agent, queue_tasks
from .test_round_after_outcomes import _RecordingRunner


class _Rounds(Dispatcher):
    """Never started: its rounds are run here, and say the fleet is full while `full` is set."""

    def __init__(self):
        super().__init__(runner=None)
        self.full = True
        self.rounds_run = 0
        self.during_round = None  # something that happens while a round runs

    def dispatch_rounds(self, on_fleet_full=None):
        self.rounds_run += 1
        if self.during_round:
            self.during_round()
        if self.full:
            on_fleet_full(None)

    def one_round(self):
        """What the thread does: wait for a reason, run the rounds."""
        kicks = self._wait()
        self.dispatch_rounds(on_fleet_full=functools.partial(self._fleet_found_full, kicks))

    def woken(self):
        return self._kicked


def test_new_work_is_skipped_after_a_round_found_the_fleet_full_and_a_kick_ends_that():
    dispatcher = _Rounds()
    dispatcher.new_work()
    assert dispatcher.woken()  # nothing known yet: a round
    dispatcher.one_round()

    dispatcher.new_work()
    dispatcher.new_work()
    assert not dispatcher.woken() and dispatcher.new_work_skipped == 2

    dispatcher.kick()  # a slot freed, an agent back, a circuit reset
    assert dispatcher.woken()
    dispatcher.full = False
    dispatcher.one_round()
    dispatcher.new_work()
    assert dispatcher.woken() and dispatcher.new_work_skipped == 2


def test_a_kick_while_the_round_ran_keeps_new_work_coming():
    # The round read a full fleet; a slot was freed (and rang) before it ended: the round must not
    # close the door on the creations that follow.
    dispatcher = _Rounds()
    dispatcher.kick()
    dispatcher.during_round = dispatcher.kick
    dispatcher.one_round()
    dispatcher.during_round = None
    dispatcher._kicked = False
    dispatcher.new_work()
    assert dispatcher.woken() and dispatcher.new_work_skipped == 0


@pytest.mark.parametrize("change", ["writer", "due time", "clock"])
def test_whatever_else_may_free_capacity_lets_new_work_through_again(change, settings):
    dispatcher = _Rounds()
    dispatcher.kick()
    dispatcher.one_round()
    dispatcher.new_work()
    assert dispatcher.new_work_skipped == 1
    if change == "writer":
        dispatcher.room_may_have_changed()  # its round gave out the slots a batch of outcomes freed
    elif change == "due time":
        dispatcher.wake_at(0)  # a tripped circuit's probe, due now
        dispatcher._wait()
    else:
        settings.SWEEP_INTERVAL_SECONDS = 0.01
        dispatcher._wait()  # nothing woke it: the clock's round
    dispatcher._kicked = False
    dispatcher.new_work()
    assert dispatcher.woken() and dispatcher.new_work_skipped == 1


def test_the_writers_batch_runs_a_round_for_a_creation_skipped_meanwhile_and_only_then():
    # A creation that committed after the writer's own round read the queue, and whose ring came before
    # the writer said the room may have changed, was skipped: it gets its round when the writer says so.
    dispatcher = _Rounds()
    dispatcher.kick()
    dispatcher.one_round()
    dispatcher.room_may_have_changed()
    assert not dispatcher.woken()  # nothing was skipped: no round for nothing
    dispatcher.kick()
    dispatcher.one_round()
    dispatcher._kicked = False
    dispatcher.new_work()
    assert not dispatcher.woken() and dispatcher.new_work_skipped == 1
    dispatcher.room_may_have_changed()
    assert dispatcher.woken()


def run_rounds(dispatcher):
    """What the dispatcher's thread does once woken: wait (returns at once), then the rounds."""
    kicks = dispatcher._wait()
    dispatcher.dispatch_rounds(on_fleet_full=functools.partial(dispatcher._fleet_found_full, kicks))


@pytest.mark.django_db(transaction=True)
def test_a_real_round_on_a_full_fleet_closes_the_door_and_a_free_slot_opens_it():
    agent = make_agent("analyst", max_concurrency=1, current_load=1)
    queue_tasks(3)
    runner = _RecordingRunner()
    dispatcher = Dispatcher(runner)  # never started: its rounds are run here
    dispatcher.kick()
    run_rounds(dispatcher)
    assert runner.submitted == [] and dispatcher._due == []  # no tripped circuit to wait for
    dispatcher.new_work()
    assert dispatcher.new_work_skipped == 1 and not dispatcher._kicked

    Agent.objects.filter(pk=agent.pk).update(current_load=0)
    dispatcher.kick()  # what the freed slot's ring does
    run_rounds(dispatcher)
    assert len(runner.submitted) == 1
    # Full again, but an agent with room elsewhere (another capability) keeps creations coming.
    make_agent("translator", capabilities=("translation",), max_concurrency=1)
    dispatcher.kick()
    run_rounds(dispatcher)
    dispatcher.new_work()
    assert dispatcher._kicked and dispatcher.new_work_skipped == 1


@pytest.mark.django_db(transaction=True)
def test_a_full_fleet_with_a_tripped_circuit_wakes_when_its_probe_falls_due():
    # The probe's ring went out when the circuit tripped; a worker started since never heard it.
    make_agent("busy", max_concurrency=1, current_load=1)
    retry_at = timezone.now() + timedelta(seconds=30)
    make_agent("tripped", max_concurrency=1, circuit_state=CircuitState.OPEN, circuit_retry_at=retry_at)
    queue_tasks(2)
    dispatcher = Dispatcher(_RecordingRunner())
    dispatcher.kick()
    run_rounds(dispatcher)
    assert dispatcher._fleet_full
    assert dispatcher._due == [retry_at.timestamp()]
