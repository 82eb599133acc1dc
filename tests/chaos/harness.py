"""Real processes for the chaos scenarios: Celery workers, Celery beat and the web server, as children.

They run against the test database on the suite's private servers (see plugin.py), with deadlines
shortened so that recovery takes seconds: tasks time out after 5 s unless a scenario says otherwise,
leases expire 2 s after that, beat sweeps every second, retries back off for at most a second.
"""

import importlib
import signal
import sys
import time

from django.apps import apps
from django.utils import timezone

from tasks.engine import wake
from tasks.models import Task
from tests.processes import Child, child_env, start_web, start_worker

from .agents import CAPABILITY

SWEEP_SECONDS = 1

# What every child process runs with, unless a scenario says otherwise.
CHILD_ENV = {
    "LEASE_GRACE_SECONDS": 2,
    "SWEEP_INTERVAL_SECONDS": SWEEP_SECONDS,
    "TASK_RETRY_BACKOFF_BASE": 0.2,
    "TASK_RETRY_BACKOFF_MAX": 1,
    "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": 2,
    "WORKER_SHUTDOWN_GRACE": 3,
    "AGENT_CONNECT_TIMEOUT": 1,
}

# The beat schedules the migrations create; pytest-django's flush between tests deletes them.
_SCHEDULE_MIGRATIONS = {
    "tasks.migrations.0002_beat_schedule": "create_schedule",
    "agents.migrations.0003_beat_schedules": "create_schedules",
}


def create_beat_schedules():
    """Recreate the periodic sweeps exactly as the migrations do (intervals read from the settings)."""
    for module, function in _SCHEDULE_MIGRATIONS.items():
        getattr(importlib.import_module(module), function)(apps, None)


def start_beat(name, log_dir, **env):
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "orchestrator_project",
        "beat",
        "-S",
        "django_celery_beat.schedulers:DatabaseScheduler",
        "--loglevel",
        "INFO",
        "--max-interval",
        str(SWEEP_SECONDS),
    ]
    child = Child(name, args, child_env(**env), log_dir)
    child.wait_for_output("beat: Starting...")
    return child


class Stack:
    """The processes of one scenario; every one still running is stopped at the end."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.children = []

    def _env(self, env):
        return {**CHILD_ENV, **env}

    def worker(self, name, **env):
        child = start_worker(name, self.log_dir, **self._env(env))
        self.children.append(child)
        return child

    def beat(self, name="beat", **env):
        child = start_beat(name, self.log_dir, **self._env(env))
        self.children.append(child)
        return child

    def web(self, name="web", **env):
        child = start_web(name, self.log_dir, **self._env(env))
        self.children.append(child)
        return child

    def relay(self, name="relay", **env):
        """`manage.py relay_events`, once it has taken the lead."""
        child = Child(
            name, [sys.executable, "manage.py", "relay_events"], child_env(**self._env(env)), self.log_dir
        )
        child.wait_for_output("relay is publishing")
        self.children.append(child)
        return child

    def stop(self):
        # Beat first (no new sweeps), then the rest; a stalled process cannot handle SIGTERM until resumed.
        for child in sorted(self.children, key=lambda c: not c.name.startswith("beat")):
            if child.proc.poll() is None:
                child.signal(signal.SIGCONT)
                child.stop()


def submit(count, *, capability=CAPABILITY, timeout_seconds=5, **fields):
    """Accept `count` tasks the way the API does (one bulk insert, then a dispatch wake-up)."""
    now = timezone.now()
    tasks = [
        Task(
            type=capability,
            required_capabilities=[capability],
            timeout_seconds=timeout_seconds,
            next_attempt_at=now,
            **fields,
        )
        for _ in range(count)
    ]
    Task.objects.bulk_create(tasks)
    wake.ring()
    return tasks


class Stopwatch:
    def __init__(self):
        self.started = time.monotonic()

    @property
    def seconds(self):
        return time.monotonic() - self.started
