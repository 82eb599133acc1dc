"""A task submitted through the API reaches an agent through a real worker and completes."""

from tasks.models import Task

from .conftest import wait_until


def test_a_created_task_is_dispatched_to_the_agent_and_completes(
    worker, operator_client, fake_agents, register
):
    fake = fake_agents()
    agent = register(fake)

    response = operator_client.post(
        "/api/v1/tasks",
        {
            "type": "document_analysis",
            "description": "Analyse",
            "input_data": {"doc": "a.pdf"},
            "priority": 1,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    task_id = response.json()["task_id"]
    assert response.json()["status"] == "pending"

    task = wait_until(
        lambda: Task.objects.filter(task_id=task_id, status="completed").first(), message="done"
    )
    assert task.result == {"echo": {"doc": "a.pdf"}}
    assert task.assigned_agent_id == agent.agent_id
    [call] = fake.calls
    assert call.path == "/execute"
    assert call.signature_valid
    assert call.headers["idempotency-key"] == task_id
    assert call.body["attempt"] == 1 and call.body["priority"] == 1
    assert call.body["callback_url"].endswith(f"/api/v1/tasks/{task_id}/result?attempt=1")
    kinds = [e["kind"] for e in operator_client.get(f"/api/v1/tasks/{task_id}").json()["events"]]
    assert kinds == ["created", "assigned", "sent", "completed"]
    agent.refresh_from_db()
    assert agent.current_load == 0 and agent.success_count == 1
