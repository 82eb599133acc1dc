from agents.models import Agent, AgentStatusChange
from tasks.models import TaskStatus
from tests.agents.conftest import task_on


def test_an_operator_unregisters_an_agent_and_its_work_is_handed_back(operator_client, alice, bob):
    running = task_on(alice, TaskStatus.RUNNING)
    assigned = task_on(alice, TaskStatus.ASSIGNED, attempts=2)
    elsewhere = task_on(bob, TaskStatus.RUNNING)

    response = operator_client.delete(f"/api/v1/agents/{alice.pk}")

    assert response.status_code == 204
    assert not Agent.objects.filter(pk=alice.pk).exists()
    assert not AgentStatusChange.objects.filter(agent_id=alice.pk).exists()
    for task in (running, assigned):
        task.refresh_from_db()
        assert (task.status, task.assigned_agent_id) == (TaskStatus.PENDING, None)
    elsewhere.refresh_from_db()
    assert (elsewhere.status, elsewhere.assigned_agent_id) == (TaskStatus.RUNNING, bob.pk)


def test_the_unregistered_agents_token_stops_working(operator_client, alice, alice_client):
    operator_client.delete(f"/api/v1/agents/{alice.pk}")

    assert alice_client.post(f"/api/v1/agents/{alice.pk}/heartbeat").status_code == 401


def test_unregistering_an_unknown_agent_is_not_found(operator_client, db):
    assert operator_client.delete("/api/v1/agents/00000000-0000-4000-8000-000000000000").status_code == 404
