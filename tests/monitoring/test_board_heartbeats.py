"""Heartbeats on the dashboard's state (static/monitoring/board.js), in headless Chromium: they are no
events, so each summary's agent list refreshes the agents' last heartbeat, and nothing else."""

import pytest

from .test_board_state import T0, T1, T2, board, js  # noqa: F401  (board: a fixture)

pytestmark = pytest.mark.browser

COUNTS = {"online": 1, "draining": 1, "unhealthy": 0, "offline": 0}


def agent(agent_id, status, last_heartbeat, timestamp=T0):
    return {
        "agent_id": agent_id,
        "name": agent_id,
        "status": status,
        "last_heartbeat": last_heartbeat,
        "timestamp": timestamp,
    }


def test_a_summary_brings_later_heartbeats_and_leaves_statuses_and_counts_to_the_stream(board):  # noqa: F811
    snapshot = [agent("x", "online", T1), agent("y", "draining", None)]
    summary = [
        agent("x", "offline", T2),  # a later heartbeat; its status is the stream's to tell
        agent("y", "online", T0),
        agent("z", "online", T2),  # not held: it waits for a snapshot, which brings its name too
    ]
    result = board(
        f"""agents.reset({js(snapshot)}, {js(COUNTS)}, null);
        const changed = agents.refresh({js(summary)}, "last_heartbeat");
        const [x, y] = [agents.items.get("x"), agents.items.get("y")];
        return [changed, x, y, agents.items.has("z"), agents.counts];"""
    )
    assert result == [
        True,
        agent("x", "online", T2),
        agent("y", "draining", T0),
        False,
        COUNTS,
    ]


def test_an_older_or_missing_heartbeat_changes_nothing(board):  # noqa: F811
    result = board(
        f"""agents.reset({js([agent("x", "online", T2)])}, {js(COUNTS)}, null);
        const older = agents.refresh({js([agent("x", "online", T1)])}, "last_heartbeat");
        const missing = agents.refresh({js([agent("x", "online", None)])}, "last_heartbeat");
        const none = agents.refresh(undefined, "last_heartbeat");
        return [older, missing, none, agents.items.get("x").last_heartbeat];"""
    )
    assert result == [False, False, False, T2]
