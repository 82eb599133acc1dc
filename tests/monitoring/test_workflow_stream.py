"""The /ws/workflow-runs/ stream, in-process with Channels' WebsocketCommunicator: the same refusals as
the task and agent streams, a snapshot of runs with their step graphs, then every run and step status
change the engine commits, in the shapes of live/messages.py. Approval steps need no agent, so the
runs move exactly when the test decides."""

import pytest
from asgiref.sync import sync_to_async

from orchestrator_project.accounts.models import ApiToken
from workflows import definitions, runs

from .conftest import communicator, make_agent, make_watcher, session_cookie
from .test_live_updates import _events, _open, closed_with

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

PATH = "/ws/workflow-runs/"
SPEC = {
    "steps": [
        {"id": "gate", "type": "approval", "timeout_seconds": 600},
        {"id": "after", "type": "approval", "depends_on": ["gate"], "timeout_seconds": 600},
    ]
}


def _viewer_cookie():
    return session_cookie(make_watcher("victor-viewer", group="viewers"))


def _gated_run():
    definitions.create_definition(name="gated", spec=SPEC)
    return runs.start_run(workflow="gated", input={"n": 1})[0]


async def test_it_refuses_anonymous_clients_agents_and_users_without_a_role():
    assert await closed_with(communicator(PATH)) == 4401
    _, agent_token = await sync_to_async(make_agent)()
    assert await closed_with(communicator(PATH, bearer=agent_token)) == 4403
    nobody = (await sync_to_async(lambda: ApiToken.issue(user=make_watcher("nora-norole")))())[1]
    assert await closed_with(communicator(PATH, bearer=nobody)) == 4403
    staff = await sync_to_async(lambda: session_cookie(make_watcher("stan-staff", staff=True)))()
    assert await closed_with(communicator(PATH, cookie=staff)) == 4403


async def test_a_status_filter_is_refused_with_4400():
    cookie = await sync_to_async(_viewer_cookie)()
    assert await closed_with(communicator(f"{PATH}?status=running", cookie=cookie)) == 4400


async def test_the_snapshot_has_active_runs_with_their_step_graph():
    cookie = await sync_to_async(_viewer_cookie)()
    run = await sync_to_async(_gated_run)()
    comm, snapshot = await _open(PATH, cookie=cookie)
    [row] = snapshot["runs"]
    assert row == {
        **row,
        "run_id": str(run.run_id),
        "workflow": "gated",
        "version": 1,
        "status": "running",
        "steps": [
            {
                "step_id": "gate",
                "kind": "approval",
                "status": "awaiting_approval",
                "attempt": 1,
                "depends_on": [],
                "depth": 0,
            },
            {
                "step_id": "after",
                "kind": "approval",
                "status": "waiting",
                "attempt": 0,
                "depends_on": ["gate"],
                "depth": 1,
            },
        ],
    }
    await comm.disconnect()


async def test_run_and_step_changes_stream_in_the_documented_shapes():
    cookie = await sync_to_async(_viewer_cookie)()
    comm, snapshot = await _open(PATH, cookie=cookie)
    assert snapshot["runs"] == []
    run = await sync_to_async(_gated_run)()
    events, _ = await _events(comm, 2)
    run_id = str(run.run_id)
    assert events[0] == {
        **events[0],
        "type": "workflow_run.status",
        "run_id": run_id,
        "workflow": "gated",
        "version": 1,
        "status": "running",
        "reason": "started",
    }
    assert events[1] == {
        **events[1],
        "type": "workflow_run.step",
        "run_id": run_id,
        "step_id": "gate",
        "kind": "approval",
        "status": "awaiting_approval",
        "attempt": 1,
    }
    assert "timestamp" in events[1]

    await sync_to_async(runs.decide_approval)(run_id=run.run_id, step_id="gate", approved=True, by="olivia")
    events, _ = await _events(comm, 2)
    assert [(e["step_id"], e["status"]) for e in events] == [
        ("gate", "completed"),
        ("after", "awaiting_approval"),
    ]
    await sync_to_async(runs.decide_approval)(run_id=run.run_id, step_id="after", approved=True, by="olivia")
    events, _ = await _events(comm, 2)
    assert [(e.get("step_id"), e["status"]) for e in events] == [("after", "completed"), (None, "completed")]
    await comm.disconnect()


async def test_a_run_id_filter_sends_only_that_runs_changes():
    cookie = await sync_to_async(_viewer_cookie)()
    first = await sync_to_async(_gated_run)()
    second, _ = await sync_to_async(runs.start_run)(workflow="gated")
    comm, snapshot = await _open(f"{PATH}?run_id={second.run_id}", cookie=cookie)
    assert [r["run_id"] for r in snapshot["runs"]] == [str(second.run_id)]
    await sync_to_async(runs.cancel_run)(run_id=first.run_id)
    await sync_to_async(runs.cancel_run)(run_id=second.run_id)
    events, _ = await _events(comm, 1)
    assert {e["run_id"] for e in events} == {str(second.run_id)}
    await comm.disconnect()
