"""Synchronous execution (`/execute`) and explicit assignment (`/assign`)."""

import logging
import threading

from agents.models import Agent
from tasks.models import Task

from .test_dispatch_rules import settled, submit

TASKS = "/api/v1/tasks"


def test_execute_runs_the_task_and_answers_with_its_result(worker, operator_client, fake_agents, register):
    fake = fake_agents(lambda call: (200, {"result": {"threats": 0}}))
    agent = register(fake)
    task_id = submit(operator_client, auto_dispatch=False)
    response = operator_client.post(f"{TASKS}/{task_id}/execute")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "task_id": task_id,
        "status": "completed",
        "result": {"threats": 0},
        "agent_id": str(agent.agent_id),
    }
    # A second execute returns the same result without calling the agent again.
    again = operator_client.post(f"{TASKS}/{task_id}/execute")
    assert again.status_code == 200 and again.json()["result"] == {"threats": 0}
    assert len(fake.calls) == 1


def test_execute_waits_for_a_task_already_running_in_the_background(
    worker, operator_client, fake_agents, register
):
    release = threading.Event()
    fake = fake_agents(lambda call: lambda: (release.wait(10), (200, {"result": "late"}))[1])
    register(fake)
    task_id = submit(operator_client)
    fake.wait_for_calls(1)
    threading.Timer(0.5, release.set).start()
    response = operator_client.post(f"{TASKS}/{task_id}/execute")
    assert response.status_code == 200 and response.json()["result"] == "late"
    assert len(fake.calls) == 1


def test_execute_without_a_capable_agent_is_a_conflict_and_the_task_stays_pending(worker, operator_client):
    task_id = submit(operator_client, auto_dispatch=False)
    response = operator_client.post(f"{TASKS}/{task_id}/execute")
    assert response.status_code == 409
    assert "No capable agent" in response.json()["detail"]
    task = Task.objects.get(task_id=task_id)
    assert task.status == "pending" and task.auto_dispatch is False


def test_execute_of_a_cancelled_task_is_a_conflict(worker, operator_client):
    task_id = submit(operator_client, auto_dispatch=False)
    operator_client.delete(f"{TASKS}/{task_id}")
    assert operator_client.post(f"{TASKS}/{task_id}/execute").status_code == 409


def test_execute_answers_502_when_the_task_fails_after_its_retries(
    worker, operator_client, fake_agents, register, settings, caplog
):
    settings.TASK_RETRY_BACKOFF_BASE = 0.01
    caplog.set_level(logging.WARNING, logger="django.request")
    fake = fake_agents(lambda call: (500, {"error": "model crashed"}))
    register(fake)
    task_id = submit(operator_client, auto_dispatch=False, max_retries=1)
    response = operator_client.post(f"{TASKS}/{task_id}/execute")
    assert response.status_code == 502
    assert response.json()["status"] == "failed" and response.json()["error"]["message"] == "model crashed"
    assert len(fake.calls) == 2
    # The task's failure is its outcome, not the server's error: no ERROR line says otherwise.
    assert [r.getMessage() for r in caplog.records if r.name == "django.request"] == []


def test_execute_of_an_unknown_task_is_404(worker, operator_client):
    assert operator_client.post(f"{TASKS}/00000000-0000-0000-0000-000000000000/execute").status_code == 404


def test_assign_refuses_an_unsuitable_agent_with_a_reason(worker, operator_client, fake_agents, register):
    fake = fake_agents()
    translator = register(fake, capabilities=["translation"])
    task_id = submit(operator_client, auto_dispatch=False)

    def refusal(agent):
        response = operator_client.post(
            f"{TASKS}/{task_id}/assign", {"agent_id": str(agent.agent_id)}, format="json"
        )
        assert response.status_code == 409
        return response.json()["detail"]

    assert "lacks required capabilities: document_analysis" in refusal(translator)
    analyst = register(fake_agents(), max_concurrency=1)
    Agent.objects.filter(pk=analyst.pk).update(status="offline")
    assert "is offline" in refusal(Agent.objects.get(pk=analyst.pk))
    Agent.objects.filter(pk=analyst.pk).update(status="draining")
    assert "is draining" in refusal(Agent.objects.get(pk=analyst.pk))
    Agent.objects.filter(pk=analyst.pk).update(status="online", current_load=1)
    assert "is full (1/1 tasks)" in refusal(Agent.objects.get(pk=analyst.pk))
    Agent.objects.filter(pk=analyst.pk).update(current_load=0, circuit_state="open")
    assert "circuit breaker open" in refusal(Agent.objects.get(pk=analyst.pk))
    assert Task.objects.get(task_id=task_id).status == "pending"
    unknown = operator_client.post(
        f"{TASKS}/{task_id}/assign", {"agent_id": "00000000-0000-0000-0000-000000000000"}, format="json"
    )
    assert unknown.status_code == 400 and "agent_id" in unknown.json()


def test_assign_then_execute_sends_to_the_chosen_agent(worker, operator_client, fake_agents, register):
    first, second = fake_agents(), fake_agents()
    register(first)
    chosen = register(second)
    task_id = submit(operator_client, auto_dispatch=False)
    response = operator_client.post(
        f"{TASKS}/{task_id}/assign", {"agent_id": str(chosen.agent_id)}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "assigned"
    assert response.json()["agent_id"] == str(chosen.agent_id)
    chosen.refresh_from_db()
    assert chosen.current_load == 1
    # Not auto-dispatched: it waits for execute.
    assert not second.calls
    result = operator_client.post(f"{TASKS}/{task_id}/execute")
    assert result.status_code == 200 and result.json()["agent_id"] == str(chosen.agent_id)
    assert len(second.calls) == 1 and not first.calls


def test_assign_without_an_agent_picks_one_and_dispatches(worker, operator_client, fake_agents, register):
    fake = fake_agents()
    register(fake)
    task_id = submit(operator_client, auto_dispatch=True)
    settled(task_id, "completed")
    other = submit(operator_client, auto_dispatch=False)
    response = operator_client.post(f"{TASKS}/{other}/assign")
    assert response.status_code == 200 and response.json()["status"] == "assigned"
    assert operator_client.post(f"{TASKS}/{other}/assign").status_code == 409
    # A manual assignment without auto-dispatch waits for execute: the agent saw only the first task.
    assert [c.body["task_id"] for c in fake.calls] == [task_id]


def test_assign_without_capable_agents_is_a_conflict(worker, operator_client):
    task_id = submit(operator_client, auto_dispatch=False)
    response = operator_client.post(f"{TASKS}/{task_id}/assign")
    assert response.status_code == 409 and "No capable agent" in response.json()["detail"]
