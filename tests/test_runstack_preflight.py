"""`make run` (orchestrator_project/runstack.py) refuses to start, in one line and before it starts
anything, when its settings are bad or its port is taken."""

import os
import signal
import socket
import subprocess
import sys

import pytest
from django.conf import settings


def _start_runstack(**env):
    """`make run`'s entry point against the test's own servers; returns (exit code, stdout, stderr). Should it
    start the stack after all, its whole process group is killed rather than left behind."""
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    base.update(DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL, **env)
    child = subprocess.Popen(
        [sys.executable, "-m", "orchestrator_project.runstack"],
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return child.returncode, stdout, stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SERVICE_PORT": "eighty", "SECRET_KEY": "x" * 50}, "SERVICE_PORT must be an integer"),
        ({"DEBUG": "false"}, "SECRET_KEY must be set to a secret value when DEBUG is off"),
    ],
)
def test_a_bad_setting_is_one_line_without_a_traceback(env, message):
    code, _, stderr = _start_runstack(**env)
    assert code == 1
    assert stderr.startswith(f"Cannot start: {message}"), stderr
    assert "Traceback" not in stderr
    assert "docs/configuration.md" in stderr


def test_a_port_in_use_is_named_before_anything_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stdout, stderr = _start_runstack(DEBUG="true", SERVICE_HOST="127.0.0.1", SERVICE_PORT=str(port))
    assert code == 1
    assert stderr.startswith(f"Cannot start: port {port} on 127.0.0.1 is in use"), stderr
    assert "SERVICE_PORT" in stderr
    assert stdout == ""  # no banner: nothing was started or migrated
