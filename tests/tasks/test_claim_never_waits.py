"""A dispatch round never waits for an agent's row that another transaction holds (a batch of outcomes
holds its agents until it commits): it plans around that agent, and says so when it could not."""

import threading
from collections import Counter

import psycopg
import pytest
from django.db import connection

from tasks.engine import claim
from tasks.models import Task

from .conftest import make_agent, queue_tasks


@pytest.fixture
def hold_rows():
    """Hold agents' rows FOR UPDATE from a second Postgres session, as a writer's open batch does."""
    sessions = []

    def hold(*agents):
        session = psycopg.connect(**connection.get_connection_params())
        session.execute(
            "SELECT 1 FROM agents_agent WHERE agent_id = ANY(%s) FOR UPDATE",
            [[agent.agent_id for agent in agents]],
        )
        sessions.append(session)
        return session

    yield hold
    for session in sessions:
        session.rollback()
        session.close()


def assigned_to():
    return Counter(Task.objects.filter(status="assigned").values_list("assigned_agent__name", flat=True))


def claim_in_a_thread(**kwargs):
    """claim() on a connection of its own, with a deadline: a round that waited would never return
    while the row is held, so the test fails instead of hanging."""
    found = {}

    def run():
        try:
            found["assignments"] = claim.claim(**kwargs)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the round waited for a held agent"
    return found["assignments"]


@pytest.mark.django_db(transaction=True)
def test_a_held_agent_is_planned_around(hold_rows):
    # least_connections would give every task to the idle agent, but its row is held.
    idle = make_agent("idle", max_concurrency=10, current_load=0)
    make_agent("busier", max_concurrency=10, current_load=5)
    queue_tasks(3, "least_connections")
    hold_rows(idle)
    told = []
    assignments = claim_in_a_thread(on_held=lambda: told.append(True))
    assert len(assignments) == 3
    assert assigned_to() == {"busier": 3}
    assert told == []  # every task found an agent: nothing to come back for


@pytest.mark.django_db(transaction=True)
def test_tasks_wait_when_every_agent_is_held_and_the_round_says_so(hold_rows):
    only = make_agent("only", max_concurrency=10)
    queue_tasks(2, "least_connections")
    session = hold_rows(only)
    told = []
    assert claim_in_a_thread(on_held=lambda: told.append(True)) == []
    assert told == [True]
    assert Task.objects.filter(status="pending").count() == 2
    session.rollback()  # the batch commits: the next round takes them
    assert len(claim_in_a_thread()) == 2
    assert assigned_to() == {"only": 2}
