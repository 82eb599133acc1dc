from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent, AgentStatus, AgentStatusChange, CircuitState

CHANGELIST = "/admin/agents/agent/"


@pytest.fixture
def admin_user(superuser):
    return superuser


def act(admin_client, action, *agents):
    return admin_client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(a.pk) for a in agents]}, follow=True
    )


def test_the_changelist_shows_status_load_heartbeat_age_and_circuit(admin_client, alice, bob):
    Agent.objects.filter(pk=bob.pk).update(
        heartbeat_expires_at=timezone.now() - timedelta(seconds=1), current_load=3
    )

    response = admin_client.get(CHANGELIST)

    html = response.content.decode()
    assert response.status_code == 200
    assert "alice" in html and "summarize, translate" in html
    assert "3/10" in html and "s ago" in html and "(stale)" in html
    assert "closed" in html
    assert alice.signing_secret not in html


def test_the_changelist_searches_and_filters(admin_client, alice, bob):
    assert "bob" not in admin_client.get(CHANGELIST, {"q": "alice"}).content.decode()
    assert admin_client.get(CHANGELIST, {"q": "translate"}).status_code == 200
    assert (
        admin_client.get(
            CHANGELIST, {"status__exact": "online", "circuit_state__exact": "closed"}
        ).status_code
        == 200
    )


def test_the_change_page_shows_history_but_no_credentials(admin_client, alice):
    response = admin_client.get(f"{CHANGELIST}{alice.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "registered" in html
    assert alice.signing_secret not in html and alice.token_hash not in html


def test_agents_cannot_be_added_in_the_admin(admin_client, db):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_the_drain_and_resume_actions(admin_client, alice):
    act(admin_client, "drain", alice)
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.DRAINING

    act(admin_client, "resume", alice)
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.ONLINE
    assert AgentStatusChange.objects.filter(agent=alice, reason__contains="in the admin").count() == 2


def test_the_mark_offline_action(admin_client, alice, bob):
    act(admin_client, "mark_offline", alice, bob)

    assert set(Agent.objects.values_list("status", flat=True)) == {AgentStatus.OFFLINE}
    assert AgentStatusChange.objects.filter(new_status="offline").count() == 2


def test_the_reset_circuit_action(admin_client, alice):
    Agent.objects.filter(pk=alice.pk).update(
        circuit_state=CircuitState.OPEN, consecutive_failures=5, circuit_retry_at=timezone.now()
    )

    act(admin_client, "reset_circuit", alice)

    alice.refresh_from_db()
    assert (alice.circuit_state, alice.consecutive_failures, alice.circuit_retry_at) == ("closed", 0, None)
