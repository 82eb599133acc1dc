"""Scenario 2: Redis is shut down without saving while tasks wait, then restarted."""

import time

import pytest

from .agents import answers_after, register
from .books import check_books, record, terminal_count, wait_for
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
    # Celery's worker sometimes dies when Redis vanishes under it (kombu: "Unrecoverable error:
    # AttributeError: 'NoneType' object has no attribute 'hostname'" while restoring unacked messages).
    # A deployment's supervisor restarts it, as Kubernetes or Compose would; so does this test, and counts.
    workers, restarts = [worker], 0

    def all_done_restarting_dead_workers():
        nonlocal restarts
        if workers[-1].proc.poll() is not None:
            restarts += 1
            workers.append(stack.worker(f"worker-{restarts}"))
        return terminal_count() >= WAITING + DURING_OUTAGE

    wait_for(all_done_restarting_dead_workers, timeout=90, message="all tasks to finish")

    books = check_books(agents)
    assert books.completed == WAITING + DURING_OUTAGE
    assert beat.proc.poll() is None, "beat reconnects by itself"
    assert workers[-1].proc.poll() is None
    record(
        "2. Redis SHUTDOWN NOSAVE while tasks wait",
        books,
        seconds=clock.seconds,
        accepted_during_outage=DURING_OUTAGE,
        accept_seconds_during_outage=round(accept_seconds, 2),
        worker_restarts=restarts,
    )
