from datetime import timedelta

from django.utils import timezone

from agents.models import Agent, AgentStatus, AgentStatusChange
from tasks.models import TaskStatus
from tests.agents.conftest import task_on


def post(client, agent, verb):
    return client.post(f"/api/v1/agents/{agent.pk}/{verb}")


def history(agent):
    return list(
        AgentStatusChange.objects.filter(agent=agent)
        .order_by("id")
        .values_list("old_status", "new_status", "reason")
    )[1:]


def test_an_operator_drains_an_agent(operator_client, alice):
    response = post(operator_client, alice, "drain")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["drained_by_operator"]) == ("draining", True)
    assert history(alice) == [("online", "draining", "drained by operator")]


def test_draining_twice_records_one_change(operator_client, alice):
    post(operator_client, alice, "drain")
    post(operator_client, alice, "drain")

    assert len(history(alice)) == 1


def test_resume_brings_a_live_agent_back_online_and_wakes_dispatch(operator_client, alice, dispatch_rings):
    post(operator_client, alice, "drain")
    assert dispatch_rings.heard() == []  # draining frees nothing

    response = post(operator_client, alice, "resume")

    assert (response.json()["status"], response.json()["drained_by_operator"]) == ("online", False)
    assert history(alice)[-1] == ("draining", "online", "resumed by operator")
    assert dispatch_rings.heard() == [""]


def test_resume_of_an_agent_whose_heartbeat_expired_takes_it_offline_and_hands_its_work_back(
    operator_client, alice
):
    post(operator_client, alice, "drain")
    Agent.objects.filter(pk=alice.pk).update(heartbeat_expires_at=timezone.now() - timedelta(seconds=1))
    task = task_on(alice, TaskStatus.ASSIGNED)

    response = post(operator_client, alice, "resume")

    assert response.json()["status"] == "offline"
    task.refresh_from_db()
    assert (task.status, task.assigned_agent_id) == (TaskStatus.PENDING, None)


def test_draining_an_offline_agent_keeps_it_offline_until_it_returns_draining(
    operator_client, alice, alice_client
):
    Agent.objects.filter(pk=alice.pk).update(status=AgentStatus.OFFLINE)

    assert post(operator_client, alice, "drain").json()["status"] == "offline"
    assert alice_client.post(f"/api/v1/agents/{alice.pk}/heartbeat").json()["status"] == "draining"


def test_drain_of_an_unknown_agent_is_not_found(operator_client, db):
    response = operator_client.post("/api/v1/agents/00000000-0000-4000-8000-000000000000/drain")

    assert response.status_code == 404
