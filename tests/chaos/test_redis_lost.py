"""Scenario 2: Redis is shut down without saving while tasks wait, then restarted."""

import time

import pytest

from .agents import answers_after, register
from .books import check_books, record, wait_for, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

WAITING = 180
DURING_OUTAGE = 20


def test_tasks_waiting_through_a_redis_restart_all_complete(stack, chaos_agents, servers):
    beat = stack.beat()
    worker = stack.worker("worker")
    clock = Stopwatch()
    submit(WAITING)  # no agent can take them yet: they wait in Postgres, their wake-ups are spent

    servers.shutdown_redis_without_saving()
    wait_for(lambda: not servers.redis_is_up(), timeout=10, message="Redis to stop")
    # Accepting work does not need Redis: the wake-up cannot be published, the tasks are stored anyway.
    started = time.monotonic()
    submit(DURING_OUTAGE)
    accept_seconds = time.monotonic() - started
    assert accept_seconds < 10
    servers.start_redis()

    # Capacity appears without any wake-up at all (as if it had been lost with Redis): the sweep finds it.
    agents = [chaos_agents(answers_after(0.05, 0.2)) for _ in range(2)]
    for agent in agents:
        register(agent, max_concurrency=50)
    wait_until_all_terminal(WAITING + DURING_OUTAGE, timeout=90)

    books = check_books(agents)
    assert books.completed == WAITING + DURING_OUTAGE
    assert beat.proc.poll() is None and worker.proc.poll() is None, (
        "beat and the worker reconnect by themselves"
    )
    record(
        "2. Redis SHUTDOWN NOSAVE while tasks wait",
        books,
        seconds=clock.seconds,
        accepted_during_outage=DURING_OUTAGE,
        accept_seconds_during_outage=round(accept_seconds, 2),
    )
