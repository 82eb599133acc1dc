"""Scenario 1: Celery workers are SIGKILLed in the middle of agent calls, again and again."""

import threading

import pytest

from tasks.models import TaskEvent

from .agents import answers_after, register
from .books import check_books, record, terminal_count, wait_for, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

TASKS = 1000
KILLS = 3


def test_killed_workers_lose_no_task_and_complete_none_twice(stack, chaos_agents):
    # Agents slow enough (100 slots, 0.2-0.5 s a call) that work is still in flight at every kill:
    # with faster ones the whole batch finished while a replacement worker was starting.
    agents = [chaos_agents(answers_after(0.2, 0.5)) for _ in range(5)]
    for agent in agents:
        register(agent, max_concurrency=20)
    stack.beat()
    workers = [stack.worker("worker-1"), stack.worker("worker-2")]
    clock = Stopwatch()
    submit(TASKS)

    replacements = []
    for kill in range(1, KILLS + 1):
        wait_for(
            lambda kill=kill: terminal_count() >= kill * TASKS // (KILLS + 2),
            timeout=60,
            message=f"{kill}/{KILLS + 2} of the tasks to finish",
        )
        wait_for(lambda: sum(a.in_flight for a in agents) >= 10, timeout=30, message="agent calls in flight")
        victim = workers.pop(0)
        victim.kill()
        # The replacement starts beside the test, which goes on watching the work (starting a worker
        # takes seconds: long enough for the rest of the batch to finish while the test waited).
        start = threading.Thread(target=lambda kill=kill: workers.append(stack.worker(f"worker-{kill + 2}")))
        start.start()
        replacements.append(start)

    for start in replacements:
        start.join(60)
    wait_until_all_terminal(TASKS, timeout=90)
    books = check_books(agents)
    assert books.completed == TASKS
    # The kills did strand calls in flight: their leases expired and the sweep handed the tasks out again.
    stranded = TaskEvent.objects.filter(kind="retrying", reason__startswith="lease expired").count()
    assert stranded >= 1
    record("1. workers SIGKILLed mid-call", books, seconds=clock.seconds, kills=KILLS)
