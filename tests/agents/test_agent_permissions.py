"""An agent's token acts for that agent only; viewers read; nobody anonymous gets in."""

import pytest

URL = "/api/v1/agents"


def test_an_agent_reads_itself(alice_client, alice):
    response = alice_client.get(f"{URL}/{alice.pk}")

    assert response.status_code == 200
    assert response.json()["agent_id"] == str(alice.pk)


def test_an_agent_cannot_read_another_agent(alice_client, bob):
    assert alice_client.get(f"{URL}/{bob.pk}").status_code == 404


def test_an_agent_cannot_heartbeat_for_another_agent(alice_client, bob):
    before = bob.last_heartbeat

    assert alice_client.post(f"{URL}/{bob.pk}/heartbeat", {}, format="json").status_code == 404
    bob.refresh_from_db()
    assert bob.last_heartbeat == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("delete", "/{self}"),
        ("delete", "/{other}"),
        ("post", "/{self}/drain"),
        ("post", "/{self}/resume"),
        ("post", "/{other}/drain"),
    ],
)
def test_an_agent_may_not_use_operator_verbs(alice_client, alice, bob, method, path):
    url = URL + path.format(self=alice.pk, other=bob.pk)

    assert getattr(alice_client, method)(url).status_code == 403


def test_an_agent_may_not_read_the_capability_summary(alice_client):
    assert alice_client.get("/api/v1/capabilities").status_code == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/{id}"),
        ("post", "/{id}/drain"),
        ("post", "/{id}/resume"),
        ("post", "/{id}/heartbeat"),
    ],
)
def test_a_viewer_cannot_change_agents(viewer_client, alice, method, path):
    assert getattr(viewer_client, method)(URL + path.format(id=alice.pk)).status_code == 403
    alice.refresh_from_db()
    assert alice.status == "online"


@pytest.mark.parametrize("path", ["", "/{id}", "/{id}/heartbeat"])
def test_anonymous_requests_are_unauthorized(anon_client, alice, path):
    response = (
        anon_client.post(URL + path.format(id=alice.pk))
        if "heartbeat" in path
        else anon_client.get(URL + path.format(id=alice.pk))
    )

    assert response.status_code == 401


def test_a_user_in_no_role_is_forbidden(nobody_client, alice):
    assert nobody_client.get(URL).status_code == 403
