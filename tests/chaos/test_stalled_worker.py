"""Scenario 6: a worker stalls past its leases (SIGSTOP); another finishes its tasks; it resumes (SIGCONT)."""

import signal
import threading

import pytest

from tasks.models import Task

from .agents import echo, register
from .books import check_books, record, wait_for, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

TASKS = 20


def test_a_stalled_workers_late_answers_change_nothing(stack, chaos_agents):
    late_answers_may_go = threading.Event()

    def behaviour(call):
        if call.body["attempt"] == 1:
            late_answers_may_go.wait(60)
            return 200, {"result": {"task_id": call.body["task_id"], "attempt": 1, "late": True}}
        return echo(call)

    agent = chaos_agents(behaviour)
    register(agent, max_concurrency=50)
    stack.beat()
    stalled = stack.worker("stalled", WORKER_SHUTDOWN_GRACE=30)
    clock = Stopwatch()
    submit(TASKS, timeout_seconds=2)
    agent.wait_for_calls(TASKS)
    stalled.signal(signal.SIGSTOP)

    stack.worker("healthy")
    wait_until_all_terminal(TASKS, timeout=60)
    # The stalled worker's calls are answered now; the answers wait in its sockets until it resumes.
    late_answers_may_go.set()
    wait_for(lambda: agent.in_flight == 0, timeout=10, message="the late answers to be sent")
    stalled.signal(signal.SIGCONT)
    # A graceful stop lets it read and apply every call it had in flight before it exits.
    stalled.stop()
    assert stalled.proc.returncode == 0

    books = check_books([agent])
    assert books.completed == TASKS
    # Every task was finished by a later attempt (normally the 2nd; a slow machine may need a 3rd), and
    # none kept the stalled worker's late answer (the books also check it is the last attempt's result).
    assert min(Task.objects.values_list("attempts", flat=True)) >= 2
    assert not any(task.result.get("late") for task in Task.objects.all())
    record("6. worker stalled past its lease (SIGSTOP/SIGCONT)", books, seconds=clock.seconds)
