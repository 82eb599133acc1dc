"""Through a running server: Uvicorn serving the sockets, a Celery worker running the task engine, and a
fake agent doing the work. Every event here was published by another process after its commit."""

import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from orchestrator_project.accounts.models import ApiToken
from tasks.models import Task, TaskStatus

from .conftest import make_agent, make_watcher
from .wsclient import Closed, HandshakeRefused, WebSocket

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _actors(agent_url, capability):
    agent, _ = make_agent(f"agent-{capability}", capabilities=[capability], endpoint=agent_url)
    operator = ApiToken.issue(user=make_watcher("olivia-operator", group="operators"))[1]
    viewer = ApiToken.issue(user=make_watcher("victor-viewer", group="viewers"))[1]
    return agent, operator, viewer


async def _until_status(socket, task_id, status):
    """Every event of `task_id` until it reaches `status`."""
    seen = []
    while not seen or seen[-1]["status"] != status:
        message = await socket.receive_json(timeout=30)
        assert message["type"] == "batch"
        seen += [event for event in message["events"] if event["task_id"] == task_id]
    return seen


async def test_a_task_is_followed_from_creation_to_completion_over_the_socket(live_stack):
    capability = f"e2e-{uuid.uuid4().hex[:8]}"
    agent, operator, viewer = await sync_to_async(_actors)(live_stack.agent_url, capability)
    socket = await WebSocket.connect(
        "127.0.0.1", live_stack.port, "/ws/tasks/", headers={"Authorization": f"Bearer {viewer}"}
    )
    try:
        assert (await socket.receive_json())["type"] == "snapshot"
        async with httpx.AsyncClient(
            base_url=live_stack.base_url, timeout=15, headers={"Authorization": f"Bearer {operator}"}
        ) as http:
            response = await http.post(
                "/api/v1/tasks",
                json={
                    "type": "summarize",
                    "input_data": {"text": "hello"},
                    "required_capabilities": [capability],
                    "priority": 1,
                },
            )
            assert response.status_code == 201, response.text
            task_id = response.json()["task_id"]
            events = await _until_status(socket, task_id, "completed")
    finally:
        await socket.close()

    assert events[0]["status"] == "pending"
    assert events[-1] == {
        **events[-1],
        "type": "task.status",
        "task_id": task_id,
        "status": "completed",
        "agent_id": str(agent.agent_id),
        "attempt": 1,
        "priority": 1,
    }
    assert {"timestamp", "kind"} <= set(events[-1])
    task = await Task.objects.aget(pk=task_id)
    assert task.status == TaskStatus.COMPLETED


async def test_metrics_of_a_live_system_agree_with_the_database(live_stack):
    capability = f"e2e-{uuid.uuid4().hex[:8]}"
    _, operator, viewer = await sync_to_async(_actors)(live_stack.agent_url, capability)
    socket = await WebSocket.connect(
        "127.0.0.1",
        live_stack.port,
        "/ws/tasks/?status=completed",
        headers={"Authorization": f"Bearer {viewer}"},
    )
    try:
        await socket.receive_json()
        async with httpx.AsyncClient(base_url=live_stack.base_url, timeout=15) as http:
            created = await http.post(
                "/api/v1/tasks/bulk",
                headers={"Authorization": f"Bearer {operator}"},
                json={"tasks": [{"type": "t", "required_capabilities": [capability]}] * 3},
            )
            assert created.status_code in (200, 201), created.text
            done = set()
            while len(done) < 3:
                message = await socket.receive_json(timeout=30)
                done |= {event["task_id"] for event in message["events"]}
            text = (
                await http.get("/metrics", headers={"Authorization": f"Bearer {live_stack.metrics_token}"})
            ).text
            health = (await http.get("/health/detailed")).json()
    finally:
        await socket.close()

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    completed = await Task.objects.filter(status=TaskStatus.COMPLETED).acount()
    assert samples[("orchestrator_tasks", (("status", "completed"),))] == completed == 3
    # Counted by the worker process, read by the web process.
    assert samples[("orchestrator_tasks_total", (("status", "completed"),))] >= 3
    assert samples[("orchestrator_agent_calls_total", (("outcome", "success"),))] >= 3
    assert samples[("orchestrator_task_duration_seconds_count", ())] >= 3
    assert health["checks"]["celery_workers"]["workers"] >= 1


async def test_the_running_server_refuses_anonymous_clients_and_foreign_origins(live_stack):
    socket = await WebSocket.connect("127.0.0.1", live_stack.port, "/ws/tasks/")
    with pytest.raises(Closed) as closed:
        await socket.receive_json()
    assert closed.value.code == 4401
    with pytest.raises(HandshakeRefused):
        await WebSocket.connect(
            "127.0.0.1", live_stack.port, "/ws/tasks/", headers={"Origin": "http://evil.example"}
        )
