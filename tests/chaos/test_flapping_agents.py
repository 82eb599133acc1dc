"""Scenario 5: agents stop and resume their heartbeats while tasks flow."""

import threading
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from agents.models import Agent, AgentStatusChange

from .agents import answers_after, register
from .books import check_books, record, terminal_count, wait_for, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

TASKS = 400
AGENTS = 4
HEARTBEAT_TIMEOUT = 2


class Heartbeat(threading.Thread):
    """An agent's heartbeat through the API, every 0.4 s, that the test can pause and resume."""

    def __init__(self, port, agent_id, token):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/api/v1/agents/{agent_id}/heartbeat"
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=5)
        self.beating = threading.Event()
        self.beating.set()
        self.stopped = threading.Event()
        self.answers = Counter()

    def run(self):
        while not self.stopped.wait(0.4):
            if self.beating.is_set():
                try:
                    self.answers[self.client.post(self.url, json={}).status_code] += 1
                except httpx.HTTPError as exc:
                    self.answers[type(exc).__name__] += 1

    def stop(self):
        self.stopped.set()
        self.join()
        self.client.close()


def status_of(agent_ids):
    return set(Agent.objects.filter(agent_id__in=agent_ids).values_list("status", flat=True))


def test_flapping_agents_hand_work_back_and_no_task_is_lost_or_doubled(stack, chaos_agents):
    web = stack.web()
    stack.beat()
    stack.worker("worker")
    fakes, heartbeats = [], {}
    for _ in range(AGENTS):
        fake = chaos_agents(answers_after(0.5, 1.5))
        now = timezone.now()
        agent, token = register(
            fake,
            max_concurrency=10,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            last_heartbeat=now,
            heartbeat_expires_at=now + timedelta(seconds=HEARTBEAT_TIMEOUT),
        )
        fakes.append(fake)
        heartbeats[agent.agent_id] = Heartbeat(web.port, agent.agent_id, token)
    for heartbeat in heartbeats.values():
        heartbeat.start()
    clock = Stopwatch()
    submit(TASKS)

    # Two agents at a time fall silent until the liveness sweep takes them offline, then beat again.
    pairs = [list(heartbeats)[:2], list(heartbeats)[2:]]
    flaps = Counter()
    try:
        while terminal_count() < TASKS * 3 // 4 or sum(flaps.values()) < 2 * AGENTS:
            pair = pairs[sum(flaps.values()) // 2 % 2]
            for agent_id in pair:
                heartbeats[agent_id].beating.clear()
                flaps[agent_id] += 1
            wait_for(lambda pair=pair: status_of(pair) == {"offline"}, timeout=15, message="agents offline")
            for agent_id in pair:
                heartbeats[agent_id].beating.set()
            wait_for(lambda pair=pair: status_of(pair) == {"online"}, timeout=15, message="agents online")
        wait_until_all_terminal(TASKS, timeout=90)
    finally:
        for heartbeat in heartbeats.values():
            heartbeat.stop()

    books = check_books(fakes)
    assert books.completed == TASKS
    assert books.hand_backs >= 1, "no agent went offline with work in flight"
    # Each silence was noticed, and recorded once: an agent's status rows alternate, never offline twice
    # in a row. (On a loaded machine a late heartbeat may add a flap of its own; that is fine.)
    for agent_id, flapped in flaps.items():
        statuses = list(
            AgentStatusChange.objects.filter(agent_id=agent_id)
            .order_by("created_at", "id")
            .values_list("new_status", flat=True)
        )
        assert statuses.count("offline") >= flapped
        assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False)), statuses
    assert all(set(h.answers) == {200} for h in heartbeats.values()), [h.answers for h in heartbeats.values()]
    record("5. flapping agents", books, seconds=clock.seconds, flaps=sum(flaps.values()))
