"""Scenario 3: Postgres restarts in immediate mode under load; every process recovers by itself."""

import httpx
import pytest
from django.db import connection

from orchestrator_project.accounts.models import ApiToken
from tests.actors import make_user

from .agents import CAPABILITY, answers_after, register
from .books import check_books, record, terminal_count, wait_for, wait_until_all_terminal
from .harness import Stopwatch, submit

pytestmark = pytest.mark.slow

TASKS = 400


def test_workers_beat_and_web_recover_from_a_postgres_restart(stack, chaos_agents, servers):
    agents = [chaos_agents(answers_after(0.1, 0.3)) for _ in range(4)]
    for agent in agents:
        register(agent, max_concurrency=25)
    _, token = ApiToken.issue(user=make_user("olivia-operator", group="operators"), name="chaos")
    processes = [stack.beat(), stack.worker("worker-1"), stack.worker("worker-2"), stack.web()]
    web = processes[-1]
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{web.port}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    clock = Stopwatch()
    submit(TASKS)
    wait_for(lambda: terminal_count() >= TASKS // 4, timeout=60, message="a quarter of the tasks to finish")

    servers.restart_postgres_immediately()
    restarted_at = clock.seconds
    connection.close_pool()  # this process's pooled connections died with the server, like everyone's
    wait_until_all_terminal(TASKS, timeout=120)

    def web_answers():
        try:
            return api.get("/api/v1/tasks", params={"status": "completed"}).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(web_answers, timeout=30, message="the web service to answer again")
    created = api.post("/api/v1/tasks", json={"type": CAPABILITY, "timeout_seconds": 5})
    assert created.status_code == 201, created.text
    wait_until_all_terminal(TASKS + 1, timeout=30)

    books = check_books(agents)
    assert books.completed == TASKS + 1
    assert [p.name for p in processes if p.proc.poll() is not None] == [], "nobody restarted anything"
    record(
        "3. Postgres restarted (immediate) under load",
        books,
        seconds=clock.seconds,
        restarted_after_seconds=round(restarted_at, 1),
    )
