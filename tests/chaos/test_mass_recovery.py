"""Scenario 8: 200 agents' circuits reach their recovery time at the same moment."""

import statistics
import threading
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from orchestrator_project.signing import new_secret
from tasks.models import TaskEvent

from .agents import echo, register
from .books import check_books, record, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

AGENTS = 200
TASKS = 400
RECOVERY = 3  # CIRCUIT_BREAKER_RECOVERY_TIMEOUT
BACKOFF_BASE = 2  # the first retry waits uniformly between 0 and 2 s
SECRET = new_secret()


def agent_number(call):
    return call.path.split("/")[2]  # /agents/<n>/execute


def test_a_mass_recovery_sends_one_probe_per_circuit_and_spreads_retries(stack, chaos_agents):
    lock = threading.Lock()
    probes = Counter()

    def behaviour(call):
        # The first probe still fails: its circuit opens again; the next one succeeds and closes it.
        with lock:
            probes[agent_number(call)] += 1
            first = probes[agent_number(call)] == 1
        return (500, {"error": "still recovering"}) if first else echo(call)

    # Ten agents per server: distinct addresses like real agents, without 200 servers in this process.
    fakes = [chaos_agents(behaviour, signing_secret=SECRET) for _ in range(AGENTS // 10)]
    now = timezone.now()
    for number in range(AGENTS):
        fake = fakes[number % len(fakes)]
        register(
            fake,
            endpoint=f"{fake.url}/agents/{number}",
            max_concurrency=2,
            circuit_state="open",
            consecutive_failures=5,
            circuit_opened_at=now,
            circuit_retry_at=now + timedelta(seconds=3),  # one instant for all of them
        )
    stack.beat()
    stack.worker(
        "worker",
        CIRCUIT_BREAKER_RECOVERY_TIMEOUT=RECOVERY,
        TASK_RETRY_BACKOFF_BASE=BACKOFF_BASE,
        TASK_RETRY_BACKOFF_MAX=60,
    )
    clock = Stopwatch()
    submit(TASKS)
    wait_until_all_terminal(TASKS, timeout=120)

    books = check_books(fakes)
    assert books.completed == TASKS
    # Every circuit let a probe through when the common recovery time came, and only one: an agent's
    # second call came only after its failed probe had opened the circuit again for RECOVERY seconds.
    calls = defaultdict(list)
    for call in (call for fake in fakes for call in fake.calls):
        calls[agent_number(call)].append(call.at)
    assert len(calls) == AGENTS
    gaps = [sorted(times)[1] - sorted(times)[0] for times in calls.values() if len(times) > 1]
    assert min(gaps) >= RECOVERY, f"an agent got a second call {min(gaps):.2f} s after its probe"
    # The second probe succeeded and closed the circuit (agents the work ran out for stay open).
    assert Agent.objects.filter(circuit_state="closed").count() == len(gaps) >= AGENTS // 2
    # The failed probes' tasks were retried at spread-out times, not all at the same instant.
    probe_failures = TaskEvent.objects.filter(kind="retrying", reason="agent answered HTTP 500")
    delays = [event.details["retry_in_seconds"] for event in probe_failures]
    assert len(delays) == AGENTS
    assert len(set(delays)) >= AGENTS * 0.9
    assert max(delays) - min(delays) >= BACKOFF_BASE * 0.8
    assert statistics.pstdev(delays) >= BACKOFF_BASE / 6  # a uniform spread has BACKOFF_BASE / 3.46
    record(
        "8. 200 circuits recover at once",
        books,
        seconds=clock.seconds,
        probes_per_half_open_window=1,
        circuits_closed_again=len(gaps),
        min_seconds_between_probe_and_next_call=round(min(gaps), 2),
        retry_delay_spread_seconds=[round(min(delays), 2), round(max(delays), 2)],
        retry_delay_stdev=round(statistics.pstdev(delays), 2),
    )
