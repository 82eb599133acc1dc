"""Whether a round is worth running (claim._WORTH_A_ROUND_SQL): only when some due task is one a free
agent serves. Asking only "is an agent free and a task due" made every wake-up read a deep backlog that
only full agents serve whenever an agent of another capability sat idle, to place nothing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.engine import claim

from .conftest import make_agent, queue_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def worth():
    return claim._worth_a_round(timezone.now())[1]


def room():
    return claim._worth_a_round(timezone.now())[0]


def queue_statements(queries):
    return [q["sql"] for q in queries if "SKIP LOCKED" in q["sql"]]


def full_translators_and_an_idle_analyst(backlog):
    make_agent("translator", capabilities=("translation",), max_concurrency=2, current_load=2)
    make_agent("analyst", capabilities=("document_analysis",), max_concurrency=2)
    queue_tasks(backlog, capabilities=("translation",))


def test_a_backlog_only_full_agents_serve_is_not_read_while_another_agent_idles():
    full_translators_and_an_idle_analyst(300)
    assert not worth()
    with CaptureQueriesContext(connection) as queries:
        assert claim.claim() == []
    assert queue_statements(queries.captured_queries) == []  # nothing locked, nothing read past


def test_a_task_the_idle_agent_serves_behind_that_backlog_is_still_placed():
    full_translators_and_an_idle_analyst(300)
    queue_tasks(1, capabilities=("document_analysis",), priority=9)  # last in the queue's order
    assert worth()
    assigned = claim.claim()
    assert [a.agent_id for a in assigned] == [claim_agent("analyst")]


def test_an_agent_offering_more_than_a_task_needs_serves_it():
    make_agent("both", capabilities=("ocr", "translation"), max_concurrency=1)
    queue_tasks(1, capabilities=("translation",))
    assert worth()


def test_an_agent_offering_less_than_a_task_needs_does_not():
    make_agent("ocr only", capabilities=("ocr",), max_concurrency=1)
    queue_tasks(1, capabilities=("ocr", "translation"))
    assert not worth()


def test_a_task_that_needs_no_capability_is_served_by_any_free_agent():
    make_agent("anyone", capabilities=("ocr",), max_concurrency=1)
    queue_tasks(1, capabilities=())
    assert worth()


def test_a_task_waiting_out_its_backoff_is_not_worth_a_round_until_it_is_due():
    make_agent("analyst", max_concurrency=1)
    (task,) = queue_tasks(1)
    task.next_attempt_at = timezone.now() + timedelta(minutes=5)
    task.save(update_fields=["next_attempt_at"])
    assert not worth()
    task.next_attempt_at = timezone.now() - timedelta(seconds=1)
    task.save(update_fields=["next_attempt_at"])
    assert worth()


def test_tasks_left_for_an_operator_to_assign_are_not_worth_a_round():
    make_agent("analyst", max_concurrency=1)
    queue_tasks(3, auto_dispatch=False)
    assert not worth()


def test_with_every_agent_full_nothing_is_worth_a_round_and_the_round_says_why():
    make_agent("analyst", max_concurrency=1, current_load=1)
    queue_tasks(3)
    assert not worth() and not room()
    full = []
    assert claim.claim(on_fleet_full=full.append) == [] and full == [None]  # and no probe to wait for


def test_a_free_agent_is_room_even_with_nothing_it_serves_due():
    full_translators_and_an_idle_analyst(3)
    assert room() and not worth()
    full = []
    assert claim.claim(on_fleet_full=full.append) == [] and full == []


def test_many_capability_sets_are_each_looked_at():
    # The sets are read in array order; the one a free agent serves sorts last.
    make_agent("zeta", capabilities=("zeta",), max_concurrency=1)
    for name in ("alpha", "beta", "gamma", "delta"):
        queue_tasks(2, capabilities=(name,))
    assert not worth()
    queue_tasks(1, capabilities=("zeta",))
    assert worth()


def test_past_so_many_capability_sets_it_leaves_the_answer_to_the_round():
    make_agent("zeta", capabilities=("zeta",), max_concurrency=1)
    limit = claim.MAX_CAPABILITY_SETS_LOOKED_AT
    for n in range(limit):
        queue_tasks(1, capabilities=(f"set {n:04}",))
    assert not worth()  # every set looked at: none is one a free agent serves
    queue_tasks(1, capabilities=(f"set {limit:04}",))
    assert worth()  # one set more than it looks at: a round decides, as before


def claim_agent(name):
    from agents.models import Agent

    return Agent.objects.get(name=name).agent_id


def test_with_no_room_it_says_when_the_first_tripped_circuits_probe_falls_due():
    from agents.models import CircuitState

    make_agent("busy", max_concurrency=1, current_load=1)
    soon, later = timezone.now() + timedelta(seconds=10), timezone.now() + timedelta(seconds=50)
    make_agent("tripped", max_concurrency=1, circuit_state=CircuitState.OPEN, circuit_retry_at=later)
    make_agent("tripped too", max_concurrency=1, circuit_state=CircuitState.OPEN, circuit_retry_at=soon)
    # A tripped agent still holding its task sends no probe: it is not the first.
    make_agent(
        "tripped, busy",
        max_concurrency=1,
        current_load=1,
        circuit_state=CircuitState.OPEN,
        circuit_retry_at=timezone.now() + timedelta(seconds=1),
    )
    queue_tasks(1)
    room, worth, probe_at = claim._worth_a_round(timezone.now())
    assert (room, worth, probe_at) == (False, False, soon)
