"""What a live stream's snapshot tells a client that keeps counts: counts read with the rows, how far back
the rows are complete, and a fresh snapshot whenever the client asks for one."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone

from monitoring import queries
from tasks.models import Task, TaskStatus

from .conftest import communicator, make_agent, make_watcher, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _viewer_cookie():
    viewer = User.objects.filter(username="victor-viewer").first()
    return session_cookie(viewer or make_watcher("victor-viewer", group="viewers"))


async def _open(path):
    comm = communicator(path, cookie=await sync_to_async(_viewer_cookie)())
    connected, _ = await comm.connect()
    assert connected
    snapshot = await comm.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    return comm, snapshot


async def test_a_snapshot_brings_counts_of_everything_matching_when_asked():
    await Task.objects.acreate(type="a")
    await Task.objects.acreate(type="b", status=TaskStatus.RUNNING)
    await Task.objects.acreate(type="c", status=TaskStatus.COMPLETED)

    comm, snapshot = await _open("/ws/tasks/?counts=true")
    assert snapshot["counts"] == {
        "pending": 1,
        "assigned": 0,
        "running": 1,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert snapshot["complete_after"] is None  # every task is in it
    await comm.disconnect()

    comm, snapshot = await _open("/ws/tasks/?counts=true&status=running,completed")
    assert snapshot["counts"] == {**snapshot["counts"], "pending": 0, "running": 1, "completed": 1}
    await comm.disconnect()

    comm, snapshot = await _open("/ws/tasks/")
    assert "counts" not in snapshot  # a count reads a whole index: only for those who ask
    await comm.disconnect()


async def test_agent_snapshots_count_too():
    await sync_to_async(make_agent)("one")
    comm, snapshot = await _open("/ws/agents/?counts=true")
    assert snapshot["counts"] == {"online": 1, "draining": 0, "unhealthy": 0, "offline": 0}
    await comm.disconnect()


async def test_a_bad_counts_value_is_a_bad_filter():
    comm = communicator("/ws/tasks/?counts=yes", cookie=await sync_to_async(_viewer_cookie)())
    connected, _ = await comm.connect()
    assert connected
    output = await comm.receive_output(timeout=5)
    assert (output["type"], output.get("code")) == ("websocket.close", 4400)
    await comm.disconnect()


async def test_complete_after_names_the_oldest_task_a_full_snapshot_still_holds():
    await sync_to_async(_backlog)(queries.TASK_SNAPSHOT_ACTIVE + 5)
    comm, snapshot = await _open("/ws/tasks/")
    held = sorted(row["created_at"] for row in snapshot["tasks"])
    assert len(held) == queries.TASK_SNAPSHOT_ACTIVE
    # Every task created after it is held; older ones may be missing (the 5 oldest are).
    assert snapshot["complete_after"] == held[0]
    await comm.disconnect()


def _backlog(size):
    now = timezone.now()
    ids = [task.pk for task in Task.objects.bulk_create(Task(type="t") for _ in range(size))]
    for age, pk in enumerate(ids):  # created_at is set on insert; spread them a second apart
        Task.objects.filter(pk=pk).update(created_at=now - timedelta(seconds=age))


async def test_a_client_asks_for_a_fresh_snapshot_and_gets_it_with_what_changed_meanwhile():
    comm, first = await _open("/ws/tasks/?counts=true")
    assert first["tasks"] == [] and first["counts"]["pending"] == 0
    # Written without an event, as if its event had been lost: only a snapshot can tell.
    task = await Task.objects.acreate(type="quiet")

    await comm.send_json_to({"type": "snapshot"})
    fresh = await comm.receive_json_from(timeout=5)

    assert fresh["type"] == "snapshot"
    assert [row["task_id"] for row in fresh["tasks"]] == [str(task.task_id)]
    assert fresh["counts"]["pending"] == 1
    await comm.disconnect()


async def test_anything_else_a_client_sends_gets_an_error_frame_and_the_stream_goes_on():
    comm, _ = await _open("/ws/agents/")
    for junk in ('{"type": "subscribe"}', "[1, 2]", "not json"):
        await comm.send_to(text_data=junk)
        reply = await comm.receive_json_from(timeout=5)
        assert reply == {
            "type": "error",
            "detail": 'Unknown message: send {"type": "snapshot"} to get a fresh snapshot.',
        }
    await comm.send_json_to({"type": "snapshot"})
    assert (await comm.receive_json_from(timeout=5))["type"] == "snapshot"
    await comm.disconnect()


def _waiting_tasks():
    """A task failing over, one waiting its backoff, one simply due and one running; their ids."""
    now = timezone.now()
    kinds = {}
    for name, values in {
        "failing_over": {"next_attempt_at": now, "failover_until": now + timedelta(seconds=3), "attempts": 1},
        "backing_off": {"next_attempt_at": now + timedelta(seconds=2.5), "attempts": 2},
        "due": {"next_attempt_at": now, "attempts": 0},
        "running": {"status": TaskStatus.RUNNING, "attempts": 1},
    }.items():
        task = Task.objects.create(type="t")
        Task.objects.filter(pk=task.pk).update(updated_at=now, **values)  # update() keeps updated_at as given
        kinds[str(task.pk)] = name
    return kinds


async def test_a_snapshot_says_why_a_pending_task_waits_as_its_retrying_event_did():
    kinds = await sync_to_async(_waiting_tasks)()
    comm, snapshot = await _open("/ws/tasks/")
    rows = {kinds[row["task_id"]]: row for row in snapshot["tasks"]}
    assert rows["failing_over"]["retry_in_seconds"] == 0.0
    assert rows["failing_over"]["failover_seconds"] == 3.0
    assert rows["backing_off"]["retry_in_seconds"] == 2.5 and "failover_seconds" not in rows["backing_off"]
    for name in ("due", "running"):
        assert "retry_in_seconds" not in rows[name] and "failover_seconds" not in rows[name]
    await comm.disconnect()
