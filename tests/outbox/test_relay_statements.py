"""An idle relay polls with one small prepared statement (relay._ANY_READY) and runs the batch statement
only once something is ready: with Django's client-side binding, Postgres planned the batch statement
anew at every poll, 20 times a second, four times what running it cost."""

import pytest

from orchestrator_project.outbox import relay as relay_module
from orchestrator_project.outbox.relay import Relay
from tasks import services
from tests.outbox.test_outbox_writes import valid
from tests.outbox.test_relay_floor import RecordingSink

_PREPARED = "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements"


def _poll(relay, session, times):
    for _ in range(times):
        relay._publish_next(session)
        relay._replay_look_at = 0.0
        relay._replay_next(session)


def _prepared(session):
    return {sql: count for sql, count in session.execute(_PREPARED).fetchall()}


def _runs_of(executions, marker):
    return [count for sql, count in executions.items() if marker in sql]


@pytest.mark.django_db(transaction=True)
def test_an_idle_relay_asks_a_prepared_question_and_still_publishes_what_comes_next():
    services.create_task(data=valid())
    sink = RecordingSink()
    relay = Relay(sink)
    with relay_module._connect() as session:
        _poll(relay, session, 5)  # publishes the event, finds nothing, then is idle for three polls
        idle = _prepared(session)
        services.create_task(data=valid())
        _poll(relay, session, 1)
        after = _prepared(session)
    assert len(sink.events) == 2  # the second event was found by an idle relay
    assert _runs_of(idle, "SELECT EXISTS") == [3], idle  # prepared once, asked at each idle poll
    assert _runs_of(idle, "finished_at IS NULL") == [5], idle  # the look for a replay, likewise
    # The batch statement is planned for its values (prepared, its generic plan cost more under load).
    assert _runs_of(after, "pending") == [], after
    assert _runs_of(after, "SELECT EXISTS") == [4], after


@pytest.mark.django_db(transaction=True)
def test_nothing_is_prepared_when_prepared_statements_are_off(settings):
    settings.DB_PREPARED_STATEMENTS = False  # behind a transaction-mode pooler
    services.create_task(data=valid())
    sink = RecordingSink()
    relay = Relay(sink)
    with relay_module._connect() as session:
        _poll(relay, session, 4)
        services.create_task(data=valid())
        _poll(relay, session, 1)
        assert session.execute(_PREPARED).fetchall() == []
    assert len(sink.events) == 2
