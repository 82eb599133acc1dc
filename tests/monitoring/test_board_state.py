"""The dashboard's state (static/monitoring/board.js) on its own, in headless Chromium: how events move
rows and counts together, and when it asks for a fresh snapshot instead of guessing."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from .test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

BOARD_JS = Path(__file__).resolve().parents[2] / "static" / "monitoring" / "board.js"
T0 = "2026-01-01T12:00:00.000000+00:00"
T1 = "2026-01-01T12:00:01.000000+00:00"
T2 = "2026-01-01T12:00:02.000000+00:00"
STATUSES = ["pending", "assigned", "running", "completed", "failed", "cancelled"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def board():
    """Runs a script against fresh stores: `run(script)`, the script's value returned."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.add_script_tag(content=BOARD_JS.read_text())

        def run(script):
            return page.evaluate(
                "(body) => new Function('tasks', 'agents', body)("
                "window.OrchestratorBoard.tasks(), window.OrchestratorBoard.agents())",
                script,
            )

        yield run
        browser.close()


def js(value):
    return json.dumps(value)


def counts(**nonzero):
    return {status: nonzero.get(status, 0) for status in STATUSES}


def task(task_id, status, *, attempt=1, timestamp=T1, created_at=T0, kind=None):
    event = {"task_id": task_id, "status": status, "attempt": attempt, "timestamp": timestamp}
    return {**event, "created_at": created_at} if kind is None else {**event, "kind": kind}


def test_an_event_moves_its_row_and_its_count_together(board):
    snapshot = [task("a", "running")]
    result = board(
        f"""tasks.reset({js(snapshot)}, {js(counts(running=1, completed=4))}, null);
        const placed = tasks.apply({js(task("a", "completed", timestamp=T2))});
        return [placed, tasks.counts, tasks.items.get("a").status];"""
    )
    assert result == [True, counts(completed=5), "completed"]


def test_what_a_transition_says_of_itself_does_not_outlive_it(board):
    # A prompt failover's timing, then a later retry that waits its backoff: the row must not still
    # say "failing over" (the dashboard reads failover_seconds), nor keep the first one's call outcome.
    failover = {
        **task("a", "pending", attempt=1, timestamp=T1, kind="retrying"),
        "retry_in_seconds": 0.0,
        "failover_seconds": 3.0,
        "agent_call_outcome": "error",
    }
    backoff = {**task("a", "pending", attempt=2, timestamp=T2, kind="retrying"), "retry_in_seconds": 2.5}
    result = board(
        f"""tasks.reset({js([task("a", "running")])}, {js(counts(running=1))}, null);
        tasks.apply({js(failover)});
        const first = Object.assign({{}}, tasks.items.get("a"));
        tasks.apply({js(backoff)});
        return [first, tasks.items.get("a")];"""
    )
    first, second = result
    assert first["failover_seconds"] == 3.0 and first["agent_call_outcome"] == "error"
    assert second["retry_in_seconds"] == 2.5 and second["attempt"] == 2
    assert "failover_seconds" not in second and "agent_call_outcome" not in second
    assert second["created_at"] == T0  # what the snapshot said of the task itself stays


def test_a_repeat_of_what_the_snapshot_had_changes_nothing(board):
    snapshot = [task("a", "completed", timestamp=T2)]
    result = board(
        f"""tasks.reset({js(snapshot)}, {js(counts(completed=1))}, null);
        const same = tasks.apply({js(task("a", "completed", timestamp=T2))});
        const older = tasks.apply({js(task("a", "running", timestamp=T1))});
        const earlierAttempt = tasks.apply({js(task("a", "failed", attempt=0, timestamp=T2))});
        return [same, older, earlierAttempt, tasks.counts, tasks.items.get("a").status];"""
    )
    assert result == [True, True, True, counts(completed=1), "completed"]


def test_a_task_created_after_the_snapshot_is_added_and_counted(board):
    result = board(
        f"""tasks.reset([], {js(counts(pending=250))}, "{T0}");
        const placed = tasks.apply({js(task("new", "pending", attempt=0, timestamp=T1, kind="created"))});
        return [placed, tasks.counts.pending, tasks.items.has("new")];"""
    )
    assert result == [True, 251, True]


def test_what_it_cannot_place_waits_for_a_snapshot(board):
    result = board(
        f"""tasks.reset([], {js(counts(pending=250))}, "{T1}");
        const old = tasks.apply({js(task("old", "cancelled", kind="cancelled"))});
        const before = tasks.apply({js(task("b", "pending", attempt=0, timestamp=T0, kind="created"))});
        return [old, before, tasks.counts, tasks.items.size];"""
    )
    assert result == [False, False, counts(pending=250), 0]


def test_agents_move_leave_and_wait_for_a_snapshot_when_unknown(board):
    online = {"agent_id": "x", "name": "x", "status": "online", "timestamp": T0}
    result = board(
        f"""agents.reset([{js(online)}], {{online: 1, draining: 0, unhealthy: 0, offline: 0}}, null);
        const drained = agents.apply({{agent_id: "x", status: "draining", timestamp: "{T1}"}});
        const unknown = agents.apply({{agent_id: "y", status: "online", timestamp: "{T1}"}});
        const afterDrain = Object.assign({{}}, agents.counts);
        agents.apply({{agent_id: "x", status: "unregistered", timestamp: "{T2}"}});
        return [drained, unknown, afterDrain, agents.counts, agents.items.size];"""
    )
    assert result == [
        True,
        False,
        {"online": 0, "draining": 1, "unhealthy": 0, "offline": 0},
        {"online": 0, "draining": 0, "unhealthy": 0, "offline": 0},
        0,
    ]


def test_a_store_holds_so_many_tasks_and_then_knows_it_no_longer_holds_the_oldest(board):
    result = board(
        """const rows = [];
        for (let i = 0; i < 260; i++) {
          const at = new Date(Date.UTC(2026, 0, 1, 12, 0, i)).toISOString();
          rows.push({task_id: "t" + i, status: "pending", attempt: 0, timestamp: at, created_at: at});
        }
        tasks.reset(rows, {pending: 260}, null);
        const evicted = tasks.apply({task_id: "t5", status: "cancelled", attempt: 0, kind: "cancelled",
                                     timestamp: new Date().toISOString()});
        return [tasks.items.size, tasks.items.has("t9"), tasks.items.has("t10"), evicted];"""
    )
    assert result == [250, False, True, False]
