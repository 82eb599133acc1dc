"""A deployment on one machine: web instances (Uvicorn), Celery workers and beat as real processes against
the test database and Redis, started with the commands the production image uses, and gated fake agents
that hold every call until the test lets them answer, so a test can stop a process while it has work
in flight and know exactly which work that was."""

import asyncio
import importlib
import json
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest
from django.apps import apps

from orchestrator_project.accounts.models import ApiToken
from tests.actors import make_user
from tests.monitoring.wsclient import Closed, WebSocket
from tests.processes import ROOT, Child, child_env, free_port
from tests.tasks.conftest import fake_agents, register, wait_until  # noqa: F401 (fixtures)

CAPABILITY = "document_analysis"


def production_command(role, *extra):
    """The production image's command for `role` (web, worker or beat: its CMD names the launcher, and
    Compose and Kubernetes run the same one with the other roles; deploy/validate.sh checks that), run
    from .venv. Settings come from the environment, as in a container."""
    [line] = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD [")]
    argv = json.loads(line.removeprefix("CMD "))
    assert argv[:3] == ["python", "-m", "orchestrator_project.serve"], argv
    return [sys.executable, *argv[1:-1], role, *extra]


class Deployment:
    """Starts processes in parallel and stops whatever is still running at the end."""

    def __init__(self, log_dir, env):
        self.log_dir = Path(log_dir)
        self.env = env
        self.children = []

    def _start(self, name, role, args, **env):
        child = Child(name, args, child_env(**{**self.env, **env}), self.log_dir)
        child.role = role
        self.children.append(child)
        return child

    def web(self, name, **env):
        port = free_port()
        child = self._start(
            name, "web", production_command("web"), SERVICE_HOST="127.0.0.1", SERVICE_PORT=port, **env
        )
        child.port = port
        child.url = f"http://127.0.0.1:{port}"
        return child

    def worker(self, name):
        # Two workers on one host need names of their own; gossip and mingle only slow their start.
        extra = ["-n", f"{name}@%h", "--without-gossip", "--without-mingle"]
        return self._start(name, "worker", production_command("worker", *extra), WORKER_CONCURRENCY=4)

    def beat(self):
        # The production schedule (the migrations' rows): transactional tests truncate it between tests.
        for module in ("tasks.migrations.0002_beat_schedule", "agents.migrations.0003_beat_schedules"):
            migration = importlib.import_module(module)
            (getattr(migration, "create_schedule", None) or migration.create_schedules)(apps, None)
        return self._start("beat", "beat", production_command("beat"))

    def wait_until_ready(self):
        for child in self.children:
            if child.role == "worker":
                child.wait_for_output("ready.", timeout=60)
            elif child.role == "beat":
                child.wait_for_output("beat: Starting", timeout=60)
            else:
                wait_until(lambda c=child: self._answers(c), timeout=60, message=f"{child.name} to answer")

    @staticmethod
    def _answers(child):
        if child.proc.poll() is not None:
            raise AssertionError(f"{child.name} exited:\n{child.output()[-3000:]}")
        try:
            return httpx.get(f"{child.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop_all(self):
        for child in self.children:
            child.signal(15)
        for child in self.children:
            child.stop()


@pytest.fixture
def deployment(tmp_path, transactional_db):
    running = Deployment(
        tmp_path,
        # Production's log format, a worker grace long enough for the held calls, short leases.
        {"LOG_FORMAT": "json", "WORKER_SHUTDOWN_GRACE": 20, "LEASE_GRACE_SECONDS": 1},
    )
    yield running
    running.stop_all()


class GatedAgents:
    """Fake agents whose calls all wait for `open()`; each call remembers the TCP port it came from, so
    a call can be traced to the worker process holding the other end of the connection."""

    def __init__(self, make_agent, count, *, max_concurrency, register_agent):
        self.gate = threading.Event()
        self.peer = threading.local()
        self.calls = []  # (task_id, attempt, client port)
        self._lock = threading.Lock()
        self.agents = []
        for _ in range(count):
            agent = make_agent(self._behaviour)
            self._trace_ports(agent)
            register_agent(agent, capabilities=[CAPABILITY], max_concurrency=max_concurrency)
            self.agents.append(agent)

    def _trace_ports(self, agent):
        handler = agent.server.RequestHandlerClass
        peer = self.peer

        class Traced(handler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                peer.port = self.client_address[1]
                super().do_POST()

        agent.server.RequestHandlerClass = Traced

    def _behaviour(self, call):
        with self._lock:
            self.calls.append((call.body["task_id"], call.body["attempt"], self.peer.port))
        attempt = call.body["attempt"]
        return lambda: (self.gate.wait(30), (200, {"result": {"attempt": attempt}}))[1]

    def open(self):
        self.gate.set()

    def held_by(self, child):
        """Task ids whose call came over a connection that `child`'s process holds open to an agent."""
        agent_ports = {agent.server.server_address[1] for agent in self.agents}
        ports = {
            c.laddr.port
            for c in psutil.Process(child.proc.pid).net_connections("tcp")
            if c.raddr and c.raddr.port in agent_ports
        }
        with self._lock:
            return {task_id for task_id, _, port in self.calls if port in ports}

    def calls_per_task(self):
        with self._lock:
            calls = list(self.calls)
        per_task = {}
        for task_id, attempt, _ in calls:
            per_task.setdefault(task_id, []).append(attempt)
        return per_task


@pytest.fixture
def gated_agents(fake_agents, register):  # noqa: F811 (fixtures imported above)
    def make(count=3, *, max_concurrency=3):
        return GatedAgents(fake_agents, count, max_concurrency=max_concurrency, register_agent=register)

    return make


def issue_token(username, group):
    return ApiToken.issue(user=make_user(username, group=group), name="deployment test")[1]


class EventStream:
    """A WebSocket client on one web instance, reading task events on a thread of its own."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.events = []
        self.error = None
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._socket = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._read(),), daemon=True
        )
        self._connected = threading.Event()
        self._thread.start()
        if not self._connected.wait(15) or self.error:
            raise AssertionError(f"the WebSocket on port {port} did not connect: {self.error}")

    async def _read(self):
        try:
            self._socket = await WebSocket.connect(
                "127.0.0.1", self.port, "/ws/tasks/", headers={"Authorization": f"Bearer {self.token}"}
            )
            snapshot = await self._socket.receive_json()
            assert snapshot["type"] == "snapshot", snapshot
            self._connected.set()
            while True:
                message = await self._socket.receive_json(timeout=3600)
                with self._changed:
                    self.events += message.get("events", [])
                    self._changed.notify_all()
        except (Closed, asyncio.IncompleteReadError, ConnectionError) as error:
            self.error = error
        except Exception as error:  # surfaced by the test's assertions
            self.error = error
        finally:
            self._connected.set()
            with self._changed:
                self._changed.notify_all()

    @property
    def local_port(self):
        """This client's end of the connection (the server sees it as the peer's port)."""
        return self._socket.writer.get_extra_info("sockname")[1]

    def seen(self, status):
        """Ids of the tasks this client was told reached `status`."""
        return {event["task_id"] for event in self.events if event["status"] == status}

    def wait_for(self, predicate, timeout, message):
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self) or self.error is not None, timeout):
                raise AssertionError(f"timed out waiting for {message}")
            if not predicate(self):
                raise AssertionError(f"the WebSocket closed before {message}: {self.error!r}")

    def close(self):
        if self._socket is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._socket.close(), self._loop).result(5)
        self._thread.join(5)
