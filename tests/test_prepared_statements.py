"""The hot statements are prepared once per database connection, unless DB_PREPARED_STATEMENTS is off."""

import pytest
from django.db import connection

from agents import services as agent_services
from tests.agents.conftest import make_agent

pytestmark = pytest.mark.django_db(transaction=True)


def _prepared(fragment):
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall() if fragment in row[0]]


def _hot_path(operator_client, agent):
    """What the busiest requests run: a creation and a heartbeat, each with its token lookup."""
    assert operator_client.post("/api/v1/tasks", {"type": "summarize"}, format="json").status_code == 201
    response = operator_client.post(f"/api/v1/agents/{agent.pk}/heartbeat", {}, format="json")
    assert response.status_code == 200
    assert agent_services.heartbeat(agent_id=agent.pk, paced=True) is not None


def test_hot_statements_are_prepared_once_per_connection(operator_client):
    agent = make_agent("prepared")
    connection.close()  # a fresh connection: nothing prepared on it yet

    for _ in range(3):
        _hot_path(operator_client, agent)

    assert len(_prepared("INSERT INTO tasks_task")) == 1
    assert len(_prepared('FROM "accounts_apitoken" t JOIN')) == 1
    assert len(_prepared("WITH old AS")) == 1  # the heartbeat (the paced and the API's are one text)


def test_nothing_is_prepared_when_turned_off(operator_client, settings):
    settings.DB_PREPARED_STATEMENTS = False
    agent = make_agent("unprepared")
    connection.close()

    _hot_path(operator_client, agent)

    assert _prepared("") == []


def test_connections_end_transactions_left_idle_by_a_stopped_process(settings):
    # What tests/chaos scenario 6 (a worker SIGSTOPped mid-transaction) relies on; set per connection.
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == f"{int(settings.DB_IDLE_IN_TRANSACTION_TIMEOUT)}s"
