"""Scenario 7: two beat processes run by mistake; no sweep acts twice."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentStatusChange
from tasks.models import TaskEvent

from .agents import echo, register
from .books import check_books, record, wait_for, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

TASKS = 60
SILENT_AGENTS = 20


def accepts_then_forgets(call):
    """202 on the first attempt and never a report: only the lease sweep can hand the task out again."""
    if call.body["attempt"] == 1:
        return 202, {"status": "accepted"}
    return echo(call)


def test_two_beats_never_make_a_sweep_act_twice(stack, chaos_agents):
    agents = [chaos_agents(accepts_then_forgets) for _ in range(2)]
    for agent in agents:
        register(agent, max_concurrency=50)
    # Agents whose heartbeat runs out once and never comes back: the liveness sweep's work.
    silent = chaos_agents()
    now = timezone.now()
    for number in range(SILENT_AGENTS):
        register(
            silent,
            endpoint=f"{silent.url}/silent/{number}",
            capabilities=["elsewhere"],
            last_heartbeat=now,
            heartbeat_timeout=2,
            heartbeat_expires_at=now + timedelta(seconds=2),
        )
    # At DEBUG each beat logs every job it sends (below it, those lines are left out): the proof below
    # that both were sending.
    beats = [stack.beat("beat-1", LOG_LEVEL="DEBUG"), stack.beat("beat-2", LOG_LEVEL="DEBUG")]
    stack.worker("worker-1")
    stack.worker("worker-2")
    clock = Stopwatch()
    submit(TASKS, timeout_seconds=2)

    wait_until_all_terminal(TASKS, timeout=60)
    wait_for(
        lambda: AgentStatusChange.objects.filter(new_status="offline").count() >= SILENT_AGENTS,
        timeout=20,
        message="the silent agents to go offline",
    )
    books = check_books(agents)
    assert books.completed == TASKS

    # Every lease expired once and was recorded once: one retry per task, for its first attempt.
    retries = Counter(TaskEvent.objects.filter(kind="retrying").values_list("task_id", "attempt"))
    assert len(retries) == TASKS and set(retries.values()) == {1}
    assert {attempt for _, attempt in retries} == {1}
    # Every expired heartbeat took its agent offline once, and left one row.
    offline = Counter(
        AgentStatusChange.objects.filter(new_status="offline").values_list("agent_id", flat=True)
    )
    assert len(offline) == SILENT_AGENTS and set(offline.values()) == {1}
    # Both beats really were sending the sweeps all along.
    sent = [beat.output().count("Sending due task tasks: sweep") for beat in beats]
    assert all(count >= 3 for count in sent), sent
    record(
        "7. two beat processes",
        books,
        seconds=clock.seconds,
        sweeps_sent_by_each_beat=sent,
        agents_taken_offline=len(offline),
    )
