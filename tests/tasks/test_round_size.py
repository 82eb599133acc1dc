"""What a dispatch round locks (claim._QUEUE_SQL): only tasks some able agent serves, and no more of
them than the fleet has places for. A backlog that only full agents serve never holds up the tasks
behind it, and other dispatchers can take what one round could not place."""

from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from tasks.engine import claim
from tasks.engine.dispatcher import Dispatcher
from tasks.models import Task, TaskStatus

from .conftest import make_agent, queue_tasks
from .test_round_after_outcomes import _RecordingRunner


def assigned_names():
    return sorted(
        Task.objects.filter(status=TaskStatus.ASSIGNED).values_list("assigned_agent__name", flat=True)
    )


def lockable_elsewhere():
    """How many pending tasks a second Postgres session (another dispatcher) can lock now."""
    with psycopg.connect(**connection.get_connection_params()) as session:
        rows = session.execute(
            "SELECT task_id FROM tasks_task WHERE status = 'pending' FOR UPDATE SKIP LOCKED"
        ).fetchall()
        session.rollback()
    return len(rows)


@pytest.mark.django_db(transaction=True)
def test_a_backlog_only_full_agents_serve_does_not_hold_up_the_tasks_behind_it():
    make_agent("translator", capabilities=("translation",), max_concurrency=2, current_load=2)
    make_agent("analyst", max_concurrency=2)
    # More urgent, and more of them than a round's batch: before, every round locked these and
    # placed nothing, and the analysis task never left the queue.
    queue_tasks(250, capabilities=("translation",), priority=1)
    queue_tasks(1, priority=5)
    assert len(claim.claim()) == 1
    assert assigned_names() == ["analyst"]
    assert (
        Task.objects.filter(status=TaskStatus.PENDING, required_capabilities=["translation"]).count() == 250
    )


@pytest.mark.django_db(transaction=True)
def test_a_round_locks_only_as_many_tasks_as_the_fleet_has_places_for():
    # Two free slots and a turn of two behind them, plus the spare: the rest stays free for others.
    make_agent("only", max_concurrency=2)
    queue_tasks(50)
    places = 2 * 2
    with transaction.atomic():
        assert len(claim.claim_within(now=timezone.now())) == 2
        assert lockable_elsewhere() == 50 - places - claim.ROUND_SPARE_TASKS
    assert assigned_names() == ["only", "only"]
    assert lockable_elsewhere() == 48


@pytest.mark.django_db(transaction=True)
def test_a_full_agent_counts_its_next_turn_so_adaptive_still_weighs_waiting_for_it():
    # One full closed agent (a turn of 3 behind it) and a free probe-less one with 1 slot: 3 + 1 + spare.
    make_agent("busy", max_concurrency=3, current_load=3)
    make_agent("free", max_concurrency=1)
    queue_tasks(40)
    with transaction.atomic():
        claim.claim_within(now=timezone.now())
        assert lockable_elsewhere() == 40 - (3 + 2 * 1) - claim.ROUND_SPARE_TASKS


def two_capabilities(translations, analyses):
    """A free one-slot agent per capability; the translations queued ahead (more urgent)."""
    make_agent("translator", capabilities=("translation",), max_concurrency=1)
    make_agent("analyst", max_concurrency=1)
    queue_tasks(translations, capabilities=("translation",), priority=1)
    queue_tasks(analyses, priority=5)


@pytest.mark.django_db(transaction=True)
def test_a_round_cut_short_with_room_left_asks_for_another_that_places_the_rest():
    # The translator's free slot lets the translations into the round; they fill it, and the round's
    # limit (2 + 2 places, plus the spare) stops before the analysis task.
    two_capabilities(30, 1)
    asked = []
    assert len(claim.claim(on_room_left=lambda: asked.append(True))) == 1
    assert asked == [True]
    assert assigned_names() == ["translator"]
    # The next round leaves out the translations (no able agent serves them) and reaches it.
    assert len(claim.claim(on_room_left=lambda: asked.append(True))) == 1
    assert assigned_names() == ["analyst", "translator"]
    assert asked == [True]


@pytest.mark.django_db(transaction=True)
def test_a_round_that_saw_the_whole_queue_asks_for_nothing_more():
    two_capabilities(3, 0)
    asked = []
    assert len(claim.claim(on_room_left=lambda: asked.append(True))) == 1
    assert asked == []  # the analyst's slot is free, but nothing behind the translations wants it


@pytest.mark.django_db(transaction=True)
def test_tasks_left_pending_by_choice_ask_for_no_second_round():
    # Every task avoids the one free agent (a prompt failover away from it): a round now would choose
    # the same, so the round asks for nothing even though it stopped at its limit.
    free = make_agent("refused", max_concurrency=1)
    make_agent("busy", max_concurrency=1, current_load=1)
    later = timezone.now() + timedelta(seconds=60)
    queue_tasks(20, avoid_agents=[free.agent_id], failover_until=later)
    asked = []
    assert claim.claim(on_room_left=lambda: asked.append(True)) == []
    assert asked == []


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_runs_the_round_a_cut_short_round_asked_for():
    two_capabilities(30, 1)
    runner = _RecordingRunner()
    dispatcher = Dispatcher(runner)  # never started: its rounds are run here
    dispatcher.dispatch_rounds()
    assert dispatcher._kicked
    dispatcher._kicked = False
    dispatcher.dispatch_rounds()
    assert len(runner.submitted) == 2
    assert assigned_names() == ["analyst", "translator"]
