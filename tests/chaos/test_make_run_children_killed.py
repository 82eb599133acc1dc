"""Scenario 9: under `make run`'s supervisor, the web server, the worker and beat are SIGKILLed in turn.

A real runstack (`python -m orchestrator_project.runstack`, what `make run` starts) runs with production
settings (DEBUG off, several web processes) against the suite's servers. Tasks are created through the
API before and right after each kill. Each time the supervisor must log the crash and start the child
again; the service must answer again (health and API), a killed Uvicorn parent must not leave its
worker processes behind, and in the end every task must complete, once, on the loopback agents.
"""

import secrets
import signal
import sys

import httpx
import psutil
import pytest

from orchestrator_project.accounts.models import ApiToken
from orchestrator_project.machine import usable_cpu_count
from tests.actors import make_user
from tests.processes import Child, child_env, free_port

from .agents import CAPABILITY, answers_after, register
from .books import check_books, record, wait_for, wait_until_all_terminal
from .harness import CHILD_ENV, Stopwatch

pytestmark = pytest.mark.slow

BATCH = 30
ROLES = {"web": ("uvicorn",), "worker": ("celery", " worker"), "beat": ("celery", " beat")}


class RunStack:
    """`python -m orchestrator_project.runstack` and the API of the service it runs."""

    def __init__(self, log_dir, token):
        self.port = free_port()
        env = child_env(
            **CHILD_ENV,
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(50),
            SERVICE_PORT=self.port,
            DJANGO_SUPERUSER_PASSWORD=secrets.token_urlsafe(16),
            # Restarts come quickly, and three kills of different children never add up to giving up.
            RUNSTACK_BACKOFF_INITIAL=0.5,
        )
        env.pop("SERVICE_HOST", None)
        self.child = Child("runstack", [sys.executable, "-m", "orchestrator_project.runstack"], env, log_dir)
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def roles(self):
        """{role: the process the supervisor started for it}, once all three run."""
        found = {}
        for process in psutil.Process(self.child.proc.pid).children():
            command = " ".join(process.cmdline())
            for role, words in ROLES.items():
                if all(word in command for word in words):
                    found[role] = process
        return found if len(found) == len(ROLES) else None

    def answers(self):
        """Health and the API both answer."""
        try:
            return (
                self.api.get("/health").status_code == 200
                and self.api.get("/api/v1/tasks", params={"page_size": 1}).status_code == 200
            )
        except httpx.TransportError:
            return False

    def create(self, count):
        """`count` tasks through the API, each retried until the service accepts it (it may be down)."""
        created = []
        for number in range(count):
            task = {"type": CAPABILITY, "required_capabilities": [CAPABILITY], "timeout_seconds": 5}
            task["input_data"] = {"n": number}
            wait_for(lambda task=task: self._accepted(task, created), timeout=60, message="the API to accept")
        return created

    def _accepted(self, task, created):
        try:
            response = self.api.post("/api/v1/tasks", json=task)
        except httpx.TransportError:
            return False
        assert response.status_code == 201, response.text
        created.append(response.json()["task_id"])
        return True

    def stop(self):
        self.api.close()
        if self.child.proc.poll() is None:
            self.child.signal(signal.SIGTERM)
        return self.child.proc.wait(90)


def alive(process):
    # An orphan is reaped by PID 1, which in a container may never happen: a zombie has exited.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill(stack, role, agents):
    """SIGKILL the child playing `role` (only it, as a crash would) and wait for its successor."""
    victim = stack.roles()[role]
    group = [victim, *victim.children(recursive=True)]
    if role == "worker":
        wait_for(lambda: sum(a.in_flight for a in agents) >= 3, timeout=30, message="agent calls in flight")
    victim.send_signal(signal.SIGKILL)
    stack.child.wait_for_output(f"runstack: {role} was killed by SIGKILL", timeout=30)
    stack.child.wait_for_output(f"runstack: restarting {role}", timeout=30)
    wait_for(
        lambda: (stack.roles() or {}).get(role, victim).pid != victim.pid,
        timeout=30,
        message=f"a new {role}",
    )
    return group


def test_the_supervisor_restarts_each_killed_child_and_no_task_is_lost(stack, chaos_agents, tmp_path):
    agents = [chaos_agents(answers_after(0.2, 0.6)) for _ in range(3)]
    for agent in agents:
        register(agent, max_concurrency=10)
    _, token = ApiToken.issue(user=make_user("olivia-operator", group="operators"), name="chaos")
    clock = Stopwatch()
    runstack = RunStack(tmp_path, token)
    created = []
    try:
        wait_for(runstack.answers, timeout=180, message="make run's service to answer")
        wait_for(runstack.roles, timeout=60, message="web, worker and beat")
        web = runstack.roles()["web"]
        web_processes = [p for p in web.children() if "multiprocessing.spawn" in " ".join(p.cmdline())]
        assert len(web_processes) == usable_cpu_count()  # Uvicorn's worker processes, one per core

        for role in ("worker", "web", "beat"):
            created += runstack.create(BATCH)  # before the kill
            left_behind = kill(runstack, role, agents)
            created += runstack.create(BATCH // 3)  # right after: the web may still be coming back
            wait_for(runstack.answers, timeout=60, message=f"the service to answer after the {role} kill")
            survivors = [p for p in left_behind if alive(p)]
            assert survivors == [], f"the killed {role} left {survivors} behind"

        wait_until_all_terminal(len(created), timeout=120)
        assert runstack.roles() is not None and runstack.child.proc.poll() is None
    finally:
        exit_code = runstack.stop()
    output = runstack.child.output()
    assert exit_code == 0, output[-3000:]
    assert "giving up" not in output

    books = check_books(agents)
    assert len(created) == 3 * (BATCH + BATCH // 3)
    # Every task in the database (one whose 201 a kill cut off included) completed, once.
    assert books.completed == books.submitted >= len(created)
    # The worker's kill stranded calls in flight: their leases expired and the sweep sent them again.
    assert books.leases_expired >= 1
    record(
        "9. make run's web, worker and beat SIGKILLed in turn",
        books,
        seconds=clock.seconds,
        web_processes=len(web_processes),
        restarts=output.count("runstack: restarting "),
    )
