import contextlib
import threading
import time

import pytest
from django.db import connections
from django.utils import timezone

from agents.models import Agent
from orchestrator_project import live
from orchestrator_project.accounts.models import hash_token, new_raw_token
from tasks.models import Task
from tests.fake_agent import FakeAgent


def wait_until(predicate, timeout=15, interval=0.02, message="condition"):
    """Poll `predicate` until it is truthy; fail after `timeout` seconds. Returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


def make_agent(name, capabilities=("document_analysis",), **fields):
    """An agent row with no server behind it (claims only choose; nothing is called)."""
    return Agent.objects.create(
        type="t",
        name=name,
        endpoint=f"http://127.0.0.1:1/{name}",
        capabilities=list(capabilities),
        token_hash=hash_token(new_raw_token("aoa_")),
        signing_secret="whsec_AAAA",
        **fields,
    )


def queue_tasks(count, strategy="", capabilities=("document_analysis",), **fields):
    """`count` due pending tasks, created in one INSERT."""
    now = timezone.now()
    return Task.objects.bulk_create(
        [
            Task(
                type="t",
                required_capabilities=list(capabilities),
                strategy=strategy,
                next_attempt_at=now,
                **fields,
            )
            for _ in range(count)
        ]
    )


def _leave_logging_to_django(**_):
    """A receiver of Celery's setup_logging: while one is connected, Celery configures no logger."""


@contextlib.contextmanager
def logging_as_django_configured_it():
    """Keep an embedded worker from reconfiguring the test process's logging.

    Left to itself, the testing worker sets the root logger to its own level, for the whole process and
    for good. The first worker of a process hides it: Celery's Django fixup runs django.setup() once
    per process, which applies LOGGING again. Every later module's worker started with the root at
    WARNING, and a worker decides once, as it starts, whether its "Task ... received/succeeded" lines
    are logged: they stayed silent for that module whatever a test set later (tests/security/
    test_secrets.py reads them, as they carry the jobs' arguments)."""
    from celery.signals import setup_logging

    setup_logging.connect(_leave_logging_to_django)
    try:
        yield
    finally:
        setup_logging.disconnect(_leave_logging_to_django)


@pytest.fixture(scope="module")
def celery_worker_session(django_db_setup, django_db_blocker):
    """A real Celery worker (same app, same broker) consuming in a thread of the test process, logging
    the way the project's LOGGING says, whichever module starts it first.

    Per module, not per session: a live worker takes any wake-up on the test queue, so it must be gone
    before modules that run their own worker processes."""
    from celery.contrib.testing.worker import start_worker

    from orchestrator_project.celery import app

    with (
        django_db_blocker.unblock(),
        logging_as_django_configured_it(),
        start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=30),
    ):
        # The testing worker sends no worker_ready, which starts a real worker's runner (tasks/jobs.py).
        from tasks.engine.runner import get_runner

        get_runner()
        yield app
    # The runner lives on in this process; stopped, its dispatcher claims nothing for later modules.
    from tasks.engine import runner

    if runner.current_runner() is not None:
        runner.current_runner().shutdown(grace=10)
        runner._runner = None


@pytest.fixture
def worker(celery_worker_session, transactional_db):
    """Dispatch under test: a real worker with committed data; waits for in-flight work at the end."""
    yield celery_worker_session
    from tasks.engine.runner import current_runner

    runner = current_runner()
    if runner is not None:
        wait_until(lambda: runner.in_flight == 0, timeout=30, message="agent calls to finish")
        runner.writer.wait_idle(10)
    for conn in connections.all():
        conn.close()


@pytest.fixture
def published():
    """Live messages as the publisher delivers them: `published(n)` waits for the first n."""
    messages = []
    arrived = threading.Condition()

    def receive(batch):
        with arrived:
            messages.extend(batch)
            arrived.notify_all()

    unsubscribe = live.subscribe_task_transitions(receive)

    def wait_for(count):
        live.flush()
        with arrived:
            assert arrived.wait_for(lambda: len(messages) >= count, timeout=10), messages
        return messages

    yield wait_for
    unsubscribe()


@pytest.fixture
def fake_agents():
    created = []

    def make(behaviour=None, **kwargs):
        agent = FakeAgent(behaviour, **kwargs)
        created.append(agent)
        return agent

    yield make
    for agent in created:
        agent.close()


@pytest.fixture
def register():
    """Register a fake agent directly in the database (the agents API is tested on its own)."""

    def make(fake, *, capabilities=("document_analysis",), max_concurrency=10, name=None, **fields):
        return Agent.objects.create(
            type="test_agent",
            name=name or f"agent {fake.url}",
            endpoint=fake.url,
            capabilities=list(capabilities),
            max_concurrency=max_concurrency,
            token_hash=hash_token(new_raw_token("aoa_")),
            signing_secret=fake.signing_secret,
            last_heartbeat=None,
            **fields,
        )

    return make
