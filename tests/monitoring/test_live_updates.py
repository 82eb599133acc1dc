"""The /ws/tasks/ and /ws/agents/ streams, driven in-process with Channels' WebsocketCommunicator."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from orchestrator_project.live import publish_agent_changes, publish_task_transitions
from tasks.models import Task, TaskStatus

from .conftest import communicator, make_agent, make_watcher, session_cookie, transition

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def closed_with(comm):
    connected, _ = await comm.connect()
    assert connected  # accepted, so that the close code can say why
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    await comm.disconnect()
    return output.get("code")


def _viewer_token():
    from orchestrator_project.accounts.models import ApiToken

    return ApiToken.issue(user=make_watcher("victor-viewer", group="viewers"))[1]


def _staff_cookie():
    return session_cookie(make_watcher("stella-staff", superuser=True))


async def _open(path, **kwargs):
    comm = communicator(path, **kwargs)
    connected, _ = await comm.connect()
    assert connected
    snapshot = await comm.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    return comm, snapshot


async def _events(comm, count, *, timeout=5):
    """Receive batches until `count` events have arrived; returns (events, number of frames)."""
    events, frames = [], 0
    while len(events) < count:
        message = await comm.receive_json_from(timeout=timeout)
        assert message["type"] == "batch"
        events.extend(message["events"])
        frames += 1
    return events, frames


async def test_it_refuses_anonymous_clients_with_4401():
    assert await closed_with(communicator("/ws/tasks/")) == 4401


async def test_it_refuses_an_invalid_bearer_token_even_with_a_session():
    cookie = await sync_to_async(_staff_cookie)()
    assert await closed_with(communicator("/ws/tasks/", cookie=cookie, bearer="aou_not-a-token")) == 4401


async def test_it_refuses_agents_with_4403():
    _, raw = await sync_to_async(make_agent)()
    assert await closed_with(communicator("/ws/agents/", bearer=raw)) == 4403


async def test_it_refuses_users_without_a_role_with_4403():
    from orchestrator_project.accounts.models import ApiToken

    raw = (await sync_to_async(lambda: ApiToken.issue(user=make_watcher("nora-norole")))())[1]
    assert await closed_with(communicator("/ws/tasks/", bearer=raw)) == 4403


async def test_it_refuses_the_handshake_from_a_foreign_origin():
    cookie = await sync_to_async(_staff_cookie)()
    comm = communicator("/ws/tasks/", cookie=cookie, origin="http://evil.example")
    connected, _ = await comm.connect()
    assert not connected
    await comm.disconnect()


async def test_it_accepts_a_program_without_origin_using_a_viewer_token():
    token = await sync_to_async(_viewer_token)()
    comm, snapshot = await _open("/ws/tasks/", bearer=token, origin=None)
    assert snapshot["tasks"] == []
    await comm.disconnect()


async def test_it_sends_a_snapshot_of_current_tasks_first():
    cookie = await sync_to_async(_staff_cookie)()
    task = await Task.objects.acreate(type="summarize", required_capabilities=["summarize"], priority=2)
    comm, snapshot = await _open("/ws/tasks/", cookie=cookie)
    [row] = snapshot["tasks"]
    assert row == {
        **row,
        "type": "task.status",
        "task_id": str(task.task_id),
        "status": "pending",
        "agent_id": None,
        "attempt": 0,
        "priority": 2,
    }
    assert "timestamp" in row
    await comm.disconnect()


async def test_it_streams_transitions_in_the_documented_shape():
    cookie = await sync_to_async(_staff_cookie)()
    comm, _ = await _open("/ws/tasks/", cookie=cookie)
    task_id = uuid.uuid4()
    await sync_to_async(publish_task_transitions)(
        [transition(task_id, "running", kind="started", agent_id="a1")]
    )
    [event], _ = await _events(comm, 1)
    assert event == {
        **event,
        "type": "task.status",
        "task_id": str(task_id),
        "status": "running",
        "agent_id": "a1",
        "attempt": 1,
        "priority": 5,
        "kind": "started",
        "task_type": "summarize",
    }
    await comm.disconnect()


async def test_it_filters_by_status_and_task_id():
    cookie = await sync_to_async(_staff_cookie)()
    pending = await Task.objects.acreate(type="a")
    done = await Task.objects.acreate(type="b", status=TaskStatus.COMPLETED)
    comm, snapshot = await _open("/ws/tasks/?status=completed", cookie=cookie)
    assert [row["task_id"] for row in snapshot["tasks"]] == [str(done.task_id)]
    await sync_to_async(publish_task_transitions)(
        [
            transition(pending.task_id, "running"),
            transition(pending.task_id, "completed"),
        ]
    )
    [event], _ = await _events(comm, 1)
    assert (event["task_id"], event["status"]) == (str(pending.task_id), "completed")
    assert await comm.receive_nothing(0.2)
    await comm.disconnect()

    comm, snapshot = await _open(f"/ws/tasks/?task_id={pending.task_id}", cookie=cookie)
    assert [row["task_id"] for row in snapshot["tasks"]] == [str(pending.task_id)]
    await sync_to_async(publish_task_transitions)(
        [transition(done.task_id, "failed"), transition(pending.task_id, "assigned")]
    )
    [event], _ = await _events(comm, 1)
    assert event["task_id"] == str(pending.task_id)
    await comm.disconnect()


async def test_it_closes_with_4400_on_a_bad_filter():
    cookie = await sync_to_async(_staff_cookie)()
    assert await closed_with(communicator("/ws/tasks/?status=bogus", cookie=cookie)) == 4400
    assert await closed_with(communicator("/ws/tasks/?task_id=not-a-uuid", cookie=cookie)) == 4400


async def test_it_coalesces_a_burst_into_few_frames_in_order():
    cookie = await sync_to_async(_staff_cookie)()
    comm, _ = await _open("/ws/tasks/", cookie=cookie)
    task_ids = [uuid.uuid4() for _ in range(300)]

    def burst():
        for task_id in task_ids:  # one publish per commit, as the engine does under load
            publish_task_transitions([transition(task_id, "completed")])

    await sync_to_async(burst)()
    events, frames = await _events(comm, len(task_ids))
    assert [event["task_id"] for event in events] == [str(task_id) for task_id in task_ids]
    assert frames <= len(task_ids) // 10
    await comm.disconnect()


async def test_events_reach_clients_only_after_the_commit():
    cookie = await sync_to_async(_staff_cookie)()
    comm, _ = await _open("/ws/tasks/", cookie=cookie)
    rolled_back, committed = uuid.uuid4(), uuid.uuid4()

    def change(task_id, *, commit):
        with transaction.atomic():
            transaction.on_commit(lambda: publish_task_transitions([transition(task_id, "completed")]))
            if not commit:
                transaction.set_rollback(True)

    await sync_to_async(change)(rolled_back, commit=False)
    await sync_to_async(change)(committed, commit=True)
    [event], _ = await _events(comm, 1)
    assert event["task_id"] == str(committed)
    assert await comm.receive_nothing(0.2)
    await comm.disconnect()


async def test_task_engine_creations_are_streamed():
    from tasks.services import create_task

    cookie = await sync_to_async(_staff_cookie)()
    comm, _ = await _open("/ws/tasks/", cookie=cookie)
    task, _ = await sync_to_async(create_task)(
        data={"type": "summarize", "required_capabilities": ["x"], "auto_dispatch": False}
    )
    [event], _ = await _events(comm, 1)
    assert (event["task_id"], event["status"], event["kind"]) == (str(task.task_id), "pending", "created")
    await comm.disconnect()


async def test_agent_stream_sends_a_snapshot_then_changes():
    cookie = await sync_to_async(_staff_cookie)()
    agent, _ = await sync_to_async(make_agent)("beta", max_concurrency=4)
    comm, snapshot = await _open("/ws/agents/", cookie=cookie)
    [row] = snapshot["agents"]
    assert row == {
        **row,
        "type": "agent.status",
        "agent_id": str(agent.agent_id),
        "name": "beta",
        "status": "online",
        "current_load": 0,
        "max_concurrency": 4,
        "circuit_state": "closed",
    }
    assert row["last_heartbeat"]
    change = {
        "agent_id": str(agent.agent_id),
        "name": "beta",
        "status": "draining",
        "current_load": 3,
        "max_concurrency": 4,
        "circuit_state": "open",
        "timestamp": row["timestamp"],
    }
    await sync_to_async(publish_agent_changes)([change])
    [event], _ = await _events(comm, 1)
    assert event == {**change, "type": "agent.status"}
    await comm.disconnect()


async def test_agent_stream_filters_by_status():
    cookie = await sync_to_async(_staff_cookie)()
    await sync_to_async(make_agent)("gamma")
    comm, snapshot = await _open("/ws/agents/?status=offline", cookie=cookie)
    assert snapshot["agents"] == []
    await comm.disconnect()
