"""`python -m orchestrator_project.serve web|worker|beat|relay`, the containers' command: it checks the
settings, then becomes (exec, the same process) the command `make run` starts for that role."""

import json
import signal
import subprocess
import sys

import psutil
import pytest

from tests.processes import ROOT, Child, child_env

from .conftest import production_command

pytestmark = pytest.mark.slow


def serve(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "orchestrator_project.serve", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unknown_role_gets_the_usage():
    result = serve("scheduler")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "usage: python -m orchestrator_project.serve web|worker|beat|relay [ARGUMENTS...]"
    )


def test_a_bad_setting_stops_it_naming_the_variable():
    result = serve("web", WEB_CONCURRENCY="0")
    assert result.returncode != 0 and "WEB_CONCURRENCY must be >= 1" in result.stderr


def test_the_web_role_becomes_uvicorn_with_its_worker_processes(deployment):
    web = deployment.web("web", WEB_CONCURRENCY=3, WEB_SHUTDOWN_GRACE=7)
    deployment.wait_until_ready()
    assert web.proc.args == production_command("web")
    # The very process that was started is Uvicorn now: the container's SIGTERM reaches the server.
    command = psutil.Process(web.proc.pid).cmdline()
    assert command[1:3] == ["-m", "uvicorn"]
    assert command[command.index("--workers") + 1] == "3"
    assert command[command.index("--timeout-graceful-shutdown") + 1] == "7"
    spawned = [
        p for p in psutil.Process(web.proc.pid).children() if "multiprocessing.spawn" in " ".join(p.cmdline())
    ]
    assert len(spawned) == 3


def test_everything_the_web_role_logs_is_json_its_parent_process_included(deployment):
    # The parent process starts and replaces the workers and never loads Django's settings; until
    # 2026-12-06 its lines were Uvicorn's plain text in an otherwise JSON log.
    web = deployment.web("web", WEB_CONCURRENCY=2)
    deployment.wait_until_ready()
    web.signal(signal.SIGTERM)
    web.proc.wait(30)
    records = [json.loads(line) for line in web.output().splitlines() if line.strip()]
    messages = [record["message"] for record in records]
    assert any(message.startswith("Started parent process") for message in messages)
    assert any(message.startswith("Stopping parent process") for message in messages)
    assert sum(message.startswith("Started server process") for message in messages) == 2
    # Uvicorn's copy of each message with a terminal's colour codes stays out of the JSON.
    assert not any("color_message" in record for record in records)


def test_the_relay_role_becomes_the_relay_and_takes_the_lead(deployment, tmp_path):
    child = Child("relay", production_command("relay"), child_env(), tmp_path)
    try:
        child.wait_for_output("relay is publishing")
        # The very process that was started is the relay now, through Django's own entry point.
        assert psutil.Process(child.proc.pid).cmdline()[1:] == ["-m", "django", "relay_events"]
    finally:
        child.stop()


def test_with_events_off_there_is_no_relay_to_serve():
    result = serve("relay", EVENT_SINK="none")
    assert result.returncode == 2 and "EVENT_SINK=none" in result.stderr
