"""Real processes for tests: Celery workers (and web servers) run as children against the test database.

Each child gets DATABASE_URL / REDIS_URL pointing at the servers and database the test session uses,
so it shares the books with the test process and can be killed like a real deployment's process.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from orchestrator_project.process_commands import web_command

ROOT = Path(__file__).resolve().parent.parent


def children_database_url():
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("ORCHESTRATOR_TESTING", None)
    env.update(
        DATABASE_URL=children_database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        DEBUG="true",
        PYTHONUNBUFFERED="1",
        ORCHESTRATOR_TESTING="false",
        # The fake agents listen on loopback, which by default only the embedded mode lets agents use.
        AGENT_ALLOWED_NETWORKS="127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


class Child:
    def __init__(self, name, args, env, log_dir):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never printed {text!r}:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def signal(self, signum):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def stop(self, timeout=30):
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def kill(self):
        self.signal(signal.SIGKILL)
        self.proc.wait(10)


def start_worker(name, log_dir, *, concurrency=4, **env):
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "orchestrator_project",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    child = Child(name, args, child_env(**env), log_dir)
    child.wait_for_output("ready.")
    return child


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_server_command(port):
    """The production web command (orchestrator_project/process_commands.py) on loopback, with one
    process: then Uvicorn imports the application before it binds, and an open port means ready."""
    return web_command(host="127.0.0.1", port=port, workers=1, grace=20, python=sys.executable)


def launch_web(name, log_dir, port, env):
    """The web server on `port` with exactly `env`; returns once it accepts connections, which with one
    process means it is ready to serve (see web_server_command)."""
    child = Child(name, web_server_command(port), env, log_dir)
    child.port = port
    child.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return child
        except OSError:
            if child.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start:\n{child.output()[-3000:]}") from None
            time.sleep(0.05)


def start_web(name, log_dir, *, port=None, **env):
    port = port or free_port()
    return launch_web(name, log_dir, port, child_env(SERVICE_PORT=port, **env))
