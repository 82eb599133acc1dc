"""Scenario 4: agents that hang, answer too slowly, or answer with a 500 MB body."""

import threading

import psutil
import pytest

from tasks.models import TaskEvent

from .agents import HangingAgent, answers_after, huge_body, register, trickled_body
from .books import check_books, record, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

TASKS = 40
TIMEOUT = 3
RSS_LIMIT = 300 * 2**20
CAP = 10 * 2**20


class PeakMemory(threading.Thread):
    """Samples a process's resident memory until stopped; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self):
        self.done.set()
        self.join()
        return self.peak


def test_hanging_slow_and_huge_agents_cost_retries_not_tasks_or_memory(stack, chaos_agents):
    hanging = chaos_agents(cls=HangingAgent)
    sleepy = chaos_agents(answers_after(TIMEOUT * 2, TIMEOUT * 2))
    trickling = chaos_agents(lambda call: (200, trickled_body(TIMEOUT * 4)))
    huge = chaos_agents(lambda call: (200, huge_body(500)))
    healthy = chaos_agents()
    bad = {}
    for name, agent in (("hanging", hanging), ("sleepy", sleepy), ("trickling", trickling), ("huge", huge)):
        bad[name] = register(agent, max_concurrency=5)[0].agent_id
    register(healthy, max_concurrency=10)

    stack.beat()
    worker = stack.worker("worker", AGENT_RESPONSE_MAX_BYTES=CAP)
    memory = PeakMemory(worker.proc.pid)
    memory.start()
    clock = Stopwatch()
    submit(TASKS, timeout_seconds=TIMEOUT, max_retries=6)
    wait_until_all_terminal(TASKS, timeout=90)
    peak = memory.stop()

    agents = [hanging, sleepy, trickling, huge, healthy]
    books = check_books(agents)
    assert books.completed == TASKS
    assert peak < RSS_LIMIT, f"worker RSS peaked at {peak / 2**20:.0f} MB"
    # Each bad agent was tried, and the worker itself gave up on it: a timeout or the size cap, never
    # the lease sweep (which would mean a call outlived its timeout).
    timed_out, too_large = f"agent did not answer within {TIMEOUT} s", "response body exceeds"
    for name, agent_id in bad.items():
        reasons = list(
            TaskEvent.objects.filter(kind="retrying", agent_id=agent_id).values_list("reason", flat=True)
        )
        assert reasons, f"the {name} agent was never tried"
        # Reading up to the cap can itself take longer than the timeout on a loaded machine.
        expected = (too_large, timed_out) if name == "huge" else (timed_out,)
        assert all(reason.startswith(expected) for reason in reasons), (name, set(reasons))
    # The worker hung up at the cap: the huge agent never got to send its 500 MB.
    assert huge.bytes_sent and max(huge.bytes_sent) < 4 * CAP
    assert TaskEvent.objects.filter(kind="retrying", reason__startswith=too_large).exists()
    record(
        "4. hanging, slow and 500 MB agents",
        books,
        seconds=clock.seconds,
        worker_peak_rss_mb=round(peak / 2**20),
        largest_body_sent_mb=round(max(huge.bytes_sent) / 2**20, 1),
    )
