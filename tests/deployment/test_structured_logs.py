"""Structured logs: every line is one JSON object, and it names the request or task it was written for."""

import asyncio
import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from orchestrator_project.logging import (
    ContextFilter,
    JsonFormatter,
    PlainFormatter,
    RequestIdMiddleware,
    log_context,
)
from orchestrator_project.process_commands import service_commands


@pytest.fixture
def log_lines():
    """Everything logged while the test runs, through the JSON formatter the settings configure."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_a_requests_log_lines_carry_the_request_id_it_was_sent_with(client, log_lines, db):
    response = client.get("/health", headers={"X-Request-ID": "req-from-the-proxy-1"})
    assert response["X-Request-ID"] == "req-from-the-proxy-1"
    [access] = [line for line in log_lines() if line["logger"] == "orchestrator.access"]
    assert access["request_id"] == "req-from-the-proxy-1"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/health", 200)
    assert access["duration_ms"] >= 0 and access["level"] == "INFO"


def test_what_a_view_logs_carries_the_request_id(log_lines):
    def view(request):
        logging.getLogger("tasks.services").warning("created %d tasks", 3)
        return HttpResponse()

    RequestIdMiddleware(view)(RequestFactory().get("/x", headers={"X-Request-ID": "abc-123"}))
    inside, access = log_lines()
    assert inside == {**inside, "message": "created 3 tasks", "level": "WARNING", "request_id": "abc-123"}
    assert access["request_id"] == "abc-123"
    # Outside the request the id is gone again.
    logging.getLogger("tasks").warning("later")
    assert "request_id" not in log_lines()[-1]


@pytest.mark.parametrize("offered", [None, "", "has spaces", "line\nbreak", "x" * 129])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(offered, log_lines):
    headers = {} if offered is None else {"X-Request-ID": offered}
    response = RequestIdMiddleware(lambda request: HttpResponse())(RequestFactory().get("/", headers=headers))
    fresh = response["X-Request-ID"]
    assert fresh != offered and len(fresh) == 32
    assert log_lines()[-1]["request_id"] == fresh


def test_two_requests_get_different_ids(log_lines):
    middleware = RequestIdMiddleware(lambda request: HttpResponse())
    first, second = (middleware(RequestFactory().get("/"))["X-Request-ID"] for _ in range(2))
    assert first != second


def test_task_context_nests_and_stays_with_its_own_asyncio_task(log_lines):
    logger = logging.getLogger("tasks.engine.runner")

    async def call(task_id, pause):
        with log_context(task_id=task_id, attempt=1):
            await asyncio.sleep(pause)
            logger.info("answered")

    async def both():
        await asyncio.gather(call("task-a", 0.02), call("task-b", 0.0))

    with log_context(request_id="outer"):
        asyncio.run(both())
    lines = log_lines()
    assert [(line["task_id"], line["attempt"], line["request_id"]) for line in lines] == [
        ("task-b", "1", "outer"),
        ("task-a", "1", "outer"),
    ]


def test_json_lines_parse_with_extras_exceptions_and_odd_objects(log_lines):
    logger = logging.getLogger("orchestrator.test")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed with %s", 'quotes " and\nnewlines', extra={"request": object(), "count": 2})
    [line] = log_lines()
    assert line["message"] == 'failed with quotes " and\nnewlines'
    assert line["count"] == 2 and line["request"].startswith("<object")
    assert "ValueError: boom" in line["exc_info"] and line["level"] == "ERROR"


def test_the_plain_format_shows_the_context_too():
    record = logging.LogRecord("tasks", logging.INFO, __file__, 1, "sent", None, None)
    formatter = PlainFormatter("%(levelname)s %(name)s %(message)s")
    with log_context(task_id="t-1"):
        ContextFilter().filter(record)
    assert formatter.format(record) == "INFO tasks sent [task_id=t-1]"


def _boot(code, **env):
    """Run `code` in a fresh interpreter with the settings the environment `env` gives."""
    from django.conf import settings

    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "LOG_FORMAT")}
    base.update(
        DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL, ORCHESTRATOR_TESTING="false"
    )
    base.update(env)
    return subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, timeout=60)


SHOW_FORMAT = (
    "import django, logging; django.setup(); from django.conf import settings; print(settings.LOG_FORMAT); "
    "logging.getLogger('tasks').warning('hello')"
)
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "k" * 50}


def test_production_logs_json_and_development_logs_plain_text():
    production = _boot(SHOW_FORMAT, **PRODUCTION)
    assert production.stdout.strip() == "json", production.stderr
    assert json.loads(production.stderr.strip().splitlines()[-1])["message"] == "hello"
    development = _boot(SHOW_FORMAT, DEBUG="true")
    assert development.stdout.strip() == "plain"
    assert development.stderr.strip().splitlines()[-1].endswith("WARNING tasks hello")
    assert _boot(SHOW_FORMAT, DEBUG="true", LOG_FORMAT="json").stdout.strip() == "json"


def test_an_unknown_log_format_stops_start_up_naming_the_variable():
    result = _boot(SHOW_FORMAT, DEBUG="true", LOG_FORMAT="xml")
    assert result.returncode != 0 and "LOG_FORMAT must be json or plain" in result.stderr


# What `celery worker` and `celery beat` do with --loglevel, then beat starting (its line, as beat's own
# module logs it), beat sending a job, a worker receiving it (its line, as the worker's strategy logs it)
# and the job running (eagerly, in this process), then a job's failure as Celery's tracer logs it.
_CELERY_LINES = """
import logging
import django
django.setup()
from celery import beat
from celery.app.trace import LOG_RECEIVED
from celery.beat import ScheduleEntry, Scheduler
from orchestrator_project.celery import app
app.log.setup(loglevel="{level}")
beat.info("beat: Starting...")
app.conf.task_always_eager = True
@app.task(name="noise.noop")
def noop():
    return None
Scheduler(app, lazy=True).apply_entry(ScheduleEntry(name="noise", task="noise.noop", app=app))
logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, {{"name": "noise.noop", "id": "1"}})
logging.getLogger("celery.app.trace").error("Task noise.noop[1] raised ValueError")
"""


def _celery_lines(level):
    env = {**os.environ, "LOG_LEVEL": level, "LOG_FORMAT": "plain"}
    code = _CELERY_LINES.format(level=level)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_celerys_lines_per_message_show_only_at_debug_and_failures_always():
    # The housekeeping schedule alone sends a job every second or two: at INFO their lines buried the log.
    logged = _celery_lines("INFO")
    assert "Sending due task noise" not in logged and "received" not in logged
    assert "succeeded in" not in logged
    # Beat's other lines still show: the process supervisors and the chaos harness wait for this one.
    assert "INFO celery.beat beat: Starting..." in logged
    assert "Task noise.noop[1] raised ValueError" in logged

    logged = _celery_lines("DEBUG")
    assert "Sending due task noise" in logged and "Task noise.noop[1] received" in logged
    assert "succeeded in" in logged and "beat: Starting..." in logged


# What Uvicorn's parent process does with --log-config (uvicorn.config.Config.configure_logging), then
# one of its lines.
_UVICORN_PARENT = """
import json, logging.config
with open({path!r}) as file:
    logging.config.dictConfig(json.load(file))
logging.getLogger("uvicorn.error").info("Started parent process [%d]", 1, extra={{"color_message": "x"}})
"""


@pytest.mark.parametrize("log_format", ["json", "plain"])
def test_uvicorns_parent_process_logs_in_log_format(settings, log_format):
    settings.LOG_FORMAT = log_format
    web = service_commands(settings)["web"]
    path = web[web.index("--log-config") + 1]
    code = _UVICORN_PARENT.format(path=path)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = result.stderr.strip()
    assert result.returncode == 0 and len(line.splitlines()) == 1, result.stderr
    if log_format == "json":
        assert json.loads(line) == {
            "timestamp": json.loads(line)["timestamp"],
            "level": "INFO",
            "logger": "uvicorn.error",
            "message": "Started parent process [1]",
        }
    else:
        assert line.endswith(" INFO uvicorn.error Started parent process [1]")
