"""Actors and machinery for the monitoring tests: agents, sessions, WebSocket communicators, and a live
stack (the production web command + a Celery worker + a fake agent) running against the test database."""

import contextlib
import json
import os
import socket
import sys
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from tests.actors import PASSWORD
from tests.communicator import WebsocketCommunicator
from tests.loopback_server import serve_in_background
from tests.processes import Child, free_port, launch_web

LIVE_METRICS_TOKEN = "live-stack-metrics-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOST = "testserver"


@pytest.fixture(autouse=True)
def _clean_redis():
    """Only our own keys are cleared, in the Redis the settings really use: a live Celery worker's queues
    and bindings must survive between tests, and so must anything outside this app."""
    from django.conf import settings

    from monitoring import beat, recorder

    client = redis.Redis.from_url(settings.REDIS_URL)
    patterns = (f"{recorder.PREFIX}:*", beat.SWEEPS_KEY, "*monitoring:celery-workers*")
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern, count=1000)]
    if keys:
        client.delete(*keys)
    yield
    client.close()


def make_watcher(username, *, group=None, staff=False, superuser=False):
    """A user; groups are fetched or made, since transactional tests truncate the migrated ones."""
    user = User.objects.create_user(
        username=username, password=PASSWORD, is_staff=staff or superuser, is_superuser=superuser
    )
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def make_agent(name="alpha", *, capabilities=("summarize",), endpoint=None, **fields):
    """An online agent with a fresh heartbeat; returns (agent, raw token)."""
    from agents.models import AGENT_TOKEN_PREFIX, Agent
    from orchestrator_project.accounts.models import hash_token, new_raw_token

    raw = new_raw_token(AGENT_TOKEN_PREFIX)
    now = timezone.now()
    agent = Agent.objects.create(
        type="test",
        name=name,
        endpoint=endpoint or f"http://127.0.0.1:9/{name}",
        capabilities=list(capabilities),
        token_hash=hash_token(raw),
        signing_secret="s" * 32,
        last_heartbeat=now,
        heartbeat_expires_at=now + timedelta(hours=1),
        **fields,
    )
    return agent, raw


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def communicator(path, *, cookie=None, bearer=None, origin=f"http://{HOST}"):
    from monitoring.routing import websocket_application

    headers = [(b"host", HOST.encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if bearer:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    return WebsocketCommunicator(websocket_application, path, headers=headers)


def transition(task_id, status, *, kind=None, attempt=1, agent_id=None, **extra):
    """A message in the shape the task engine publishes."""
    return {
        "task_id": str(task_id),
        "status": status,
        "agent_id": agent_id,
        "attempt": attempt,
        "priority": 5,
        "timestamp": timezone.now().isoformat(),
        "kind": kind or status,
        "type": "summarize",
        "capabilities": ["summarize"],
        **extra,
    }


# --- A live stack --------------------------------------------------------------------------------


def wait_until(predicate, *, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def port_open(port):
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def child_env(**overrides):
    """Unlike tests.processes.child_env, the children keep the test settings (ORCHESTRATOR_TESTING from
    this process): the browser test logs in with a password hashed by the test-only hasher."""
    from django.conf import settings
    from django.db import connection

    database = urlsplit(settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"])
    env = dict(
        os.environ,
        DATABASE_URL=urlunsplit(database),
        REDIS_URL=settings.REDIS_URL,
        DEBUG="true",
        DJANGO_SETTINGS_MODULE="orchestrator_project.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def start_web_server(port, env, name):
    """The web server as production runs it (tests/processes.py), its output in test-artifacts/<name>.log."""
    ARTIFACTS.mkdir(exist_ok=True)
    return launch_web(name, ARTIFACTS, port, env)


class FakeAgent(BaseHTTPRequestHandler):
    """Answers `POST /execute` after a short think, with a result echoing the task. A subclass with a
    `gate` (threading.Event) holds every call until the gate is set instead."""

    delay = 0.3
    gate = None

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.gate is not None:
            self.gate.wait(60)
        else:
            time.sleep(self.delay)
        payload = json.dumps({"result": {"echo": body.get("input_data"), "ok": True}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class LiveStack:
    metrics_token = LIVE_METRICS_TOKEN

    def __init__(self, port, agent_url):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.agent_url = agent_url

    def http(self, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=15)


@pytest.fixture(scope="module")
def live_stack(django_db_setup, django_db_blocker):
    """The web server and a Celery worker on the test database, and a fake agent, for one test module.

    Not for the whole session: a live worker claims any pending task in the shared test database, so
    it must be gone before other modules' tests (with their own workers and settings) run."""
    agent_server = serve_in_background(FakeAgent)
    port = free_port()
    env = child_env(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", METRICS_TOKEN=LIVE_METRICS_TOKEN)
    web = start_web_server(port, env, "live-web")
    worker = Child(
        "live-worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestrator_project",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "INFO",
            "-n",
            f"monitoring-{port}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        ARTIFACTS,
    )
    try:
        from orchestrator_project.celery import app

        wait_until(
            lambda: bool(app.control.ping(timeout=0.5)) or worker.proc.poll() is not None,
            timeout=60,
            what="the Celery worker",
        )
        assert worker.proc.poll() is None, worker.output()[-3000:]
        yield LiveStack(port, f"http://127.0.0.1:{agent_server.server_address[1]}")
    finally:
        worker.stop()
        web.stop()
        agent_server.shutdown()
