from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from agents import services
from agents.models import Agent, AgentStatus, AgentStatusChange
from tests.agents.conftest import client_for_agent, make_agent


def beat(client, agent, body=None):
    return client.post(f"/api/v1/agents/{agent.pk}/heartbeat", body or {}, format="json")


def changes_of(agent):
    return list(
        AgentStatusChange.objects.filter(agent=agent)
        .exclude(reason="registered")
        .values_list("old_status", "new_status")
    )


def set_status(agent, status, **fields):
    Agent.objects.filter(pk=agent.pk).update(status=status, **fields)


def db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def test_a_heartbeat_answers_with_the_next_deadline(alice_client, alice):
    response = beat(alice_client, alice)

    assert response.status_code == 200
    data = response.json()
    alice.refresh_from_db()
    assert data["agent_id"] == str(alice.pk)
    assert data["status"] == "online"
    assert data["heartbeat_timeout"] == alice.heartbeat_timeout
    assert data["next_heartbeat_before"] == alice.heartbeat_expires_at.isoformat().replace("+00:00", "Z")
    assert alice.heartbeat_expires_at == alice.last_heartbeat + timedelta(seconds=alice.heartbeat_timeout)


def test_the_agents_own_timestamp_is_ignored(alice_client, alice):
    before = db_now()

    beat(alice_client, alice, {"timestamp": "2001-01-01T00:00:00Z", "last_heartbeat": "2001-01-01T00:00:00Z"})

    alice.refresh_from_db()
    assert before <= alice.last_heartbeat <= db_now()


def test_an_offline_agent_comes_back_online_and_wakes_dispatch(alice_client, alice, dispatch_rings):
    set_status(alice, AgentStatus.OFFLINE, probe_failures=2)

    response = beat(alice_client, alice)

    assert response.json()["status"] == "online"
    assert changes_of(alice) == [("offline", "online")]
    assert Agent.objects.get(pk=alice.pk).probe_failures == 0
    assert dispatch_rings.heard() == [""]


def test_a_heartbeat_that_changes_nothing_records_nothing(
    alice_client, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        beat(alice_client, alice)

    assert changes_of(alice) == []
    assert callbacks == []


def test_a_heartbeat_that_changes_nothing_does_not_wake_dispatch(alice_client, alice, dispatch_rings):
    beat(alice_client, alice)

    assert dispatch_rings.heard() == []


def test_an_operators_drain_sticks_against_the_agents_online(alice_client, alice):
    services.drain(agent_id=alice.pk)

    response = beat(alice_client, alice, {"status": "online"})

    assert response.json()["status"] == "draining"
    assert changes_of(alice) == [("online", "draining")]


def test_an_offline_agent_drained_by_an_operator_comes_back_draining(alice_client, alice):
    set_status(alice, AgentStatus.OFFLINE, drained_by_operator=True)

    assert beat(alice_client, alice).json()["status"] == "draining"


def test_an_agent_may_drain_itself_and_come_back(alice_client, alice):
    assert beat(alice_client, alice, {"status": "draining"}).json()["status"] == "draining"
    assert beat(alice_client, alice).json()["status"] == "draining"
    assert beat(alice_client, alice, {"status": "online"}).json()["status"] == "online"

    assert changes_of(alice) == [("draining", "online"), ("online", "draining")]


def test_an_unhealthy_agent_stays_unhealthy_until_a_probe_succeeds(alice_client, alice):
    set_status(alice, AgentStatus.UNHEALTHY)

    response = beat(alice_client, alice, {"status": "online"})

    assert response.json()["status"] == "unhealthy"
    assert Agent.objects.get(pk=alice.pk).last_heartbeat is not None
    assert changes_of(alice) == []


def test_the_agents_load_is_kept_apart_from_the_orchestrators(alice_client, alice):
    Agent.objects.filter(pk=alice.pk).update(current_load=2)

    beat(alice_client, alice, {"current_load": 7, "metrics": {"cpu": 0.5, "queue": [1, 2]}})

    alice.refresh_from_db()
    assert (alice.current_load, alice.reported_load) == (2, 7)
    assert alice.last_metrics == {"cpu": 0.5, "queue": [1, 2]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "offline"),
        ("status", "unhealthy"),
        ("status", 1),
        ("current_load", -1),
        ("current_load", "3"),
        ("current_load", 2.5),
        ("metrics", [1, 2]),
        ("metrics", {"nul": "a\x00b"}),
        ("metrics", {"big": "x" * 20_000}),
    ],
)
def test_a_bad_heartbeat_is_refused_and_changes_nothing(alice_client, alice, field, value):
    before = Agent.objects.get(pk=alice.pk).last_heartbeat

    response = beat(alice_client, alice, {field: value})

    assert response.status_code == 400
    assert field in response.json()
    assert Agent.objects.get(pk=alice.pk).last_heartbeat == before


def test_an_operator_may_heartbeat_for_an_agent(operator_client, alice):
    assert beat(operator_client, alice).status_code == 200


def test_a_heartbeat_for_an_unknown_agent_is_not_found(operator_client, db):
    response = operator_client.post("/api/v1/agents/00000000-0000-4000-8000-000000000000/heartbeat")

    assert response.status_code == 404


def test_a_heartbeat_is_one_statement_after_authentication(alice_client, alice):
    with CaptureQueriesContext(connection) as queries:
        beat(alice_client, alice, {"current_load": 1})

    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 2  # the token lookup, then the guarded update
    assert statements[1].lstrip().startswith("WITH old AS")


def _updates_of_agents():
    """(updates, HOT updates) of the agents table in this transaction so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_updated('agents_agent'::regclass),"
            " pg_stat_get_xact_tuples_hot_updated('agents_agent'::regclass)"
        )
        return cursor.fetchone()


def test_a_heartbeat_writes_no_index(alice):
    """A HOT update: nothing a heartbeat writes is indexed, so no index gets a new entry (Agent.Meta)."""
    updates, hot = _updates_of_agents()
    for beat_number in range(1, 4):
        services.heartbeat(
            agent_id=alice.pk, reported_load=beat_number, metrics={"n": beat_number}, paced=True
        )
        assert _updates_of_agents() == (updates + beat_number, hot + beat_number)


def test_heartbeats_are_throttled_per_agent(alice_client, alice, bob, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth": "10/min", "heartbeat": "2/min"},
    }

    codes = [beat(alice_client, alice).status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    assert beat(client_for_agent(bob), bob).status_code == 200


def test_the_heartbeat_budget_comes_back_as_time_passes(alice_client, alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth": "10/min", "heartbeat": "2/min"},
    }
    assert [beat(alice_client, alice).status_code for _ in range(3)] == [200, 200, 429]

    # Half a minute later one interval (30 s) has been paid back: one more heartbeat, not two.
    Agent.objects.filter(pk=alice.pk).update(heartbeat_tat=F("heartbeat_tat") - timedelta(seconds=30))
    assert [beat(alice_client, alice).status_code for _ in range(2)] == [200, 429]
    # A full minute later the whole burst is back.
    Agent.objects.filter(pk=alice.pk).update(heartbeat_tat=F("heartbeat_tat") - timedelta(minutes=1))
    assert [beat(alice_client, alice).status_code for _ in range(3)] == [200, 200, 429]


def test_a_new_registration_of_an_offline_agent_brings_it_back(db):
    agent = make_agent("carol")
    set_status(agent, AgentStatus.OFFLINE)

    make_agent("carol", capabilities=["other"])

    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ONLINE
    assert changes_of(agent) == [("offline", "online")]


def _synchronous_commit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_commits_without_waiting_for_the_disk_and_only_itself():
    from django.db import transaction

    agent = make_agent("relaxed")
    with transaction.atomic():
        services.heartbeat(agent_id=agent.pk)
        assert _synchronous_commit() == "off"  # for the heartbeat's own transaction
    assert _synchronous_commit() == "on"  # nothing else on this connection is relaxed
    services.heartbeat(agent_id=agent.pk)  # autocommit, as the API runs it
    assert _synchronous_commit() == "on"
    assert Agent.objects.get(pk=agent.pk).last_heartbeat is not None
    # Registration, task state and everything else stay durable.
    with transaction.atomic():
        services.drain(agent_id=agent.pk)
        assert _synchronous_commit() == "on"
