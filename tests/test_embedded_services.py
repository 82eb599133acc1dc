"""The embedded PostgreSQL and Redis: started on demand under a var dir, found again by every process,
and clear about what went wrong when they cannot start.

Each test runs the servers in a var dir and on ports of its own, through the same command line a
developer uses (`python -m orchestrator_project.embedded start|stop|status`).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from orchestrator_project import embedded

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
# Variables that would make a child use the test session's servers (or settings) instead of its own.
_INHERITED = ("DATABASE_URL", "REDIS_URL", "ORCHESTRATOR_VAR_DIR", "EMBEDDED_POSTGRES_PORT",
              "EMBEDDED_REDIS_PORT", "SERVICE_HOST", "SERVICE_PORT", "ORCHESTRATOR_TESTING", "DEBUG",
              "SECRET_KEY", "WEB_CONCURRENCY", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")  # fmt: skip


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(var_dir, **extra):
    """An environment whose embedded servers live in `var_dir` on free ports."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    env.update(
        ORCHESTRATOR_VAR_DIR=str(var_dir),
        EMBEDDED_POSTGRES_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
    )
    env.update(extra)
    return env


def embedded_command(env, command):
    return subprocess.run(
        [sys.executable, "-m", "orchestrator_project.embedded", command],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def port_answers(port):
    return embedded._port_open(int(port))


def postmaster_pid(var_dir):
    return int((Path(var_dir) / "postgres" / "postmaster.pid").read_text().splitlines()[0])


@pytest.fixture
def servers(tmp_path):
    """An environment for servers of this test's own, stopped (whatever happened) at the end."""
    env = embedded_env(tmp_path / "var")
    yield env
    embedded_command(env, "stop")


def test_it_starts_both_servers_in_its_var_dir_and_stops_them(servers):
    var_dir = Path(servers["ORCHESTRATOR_VAR_DIR"])
    result = embedded_command(servers, "start")
    assert result.returncode == 0, result.stderr
    pg_port, redis_port = servers["EMBEDDED_POSTGRES_PORT"], servers["EMBEDDED_REDIS_PORT"]
    assert f"DATABASE_URL=postgres://postgres@127.0.0.1:{pg_port}/orchestrator" in result.stdout
    assert f"REDIS_URL=redis://127.0.0.1:{redis_port}/0" in result.stdout
    assert (var_dir / "postgres" / "PG_VERSION").exists()
    assert psutil.Process(postmaster_pid(var_dir)).name() == "postgres"
    assert psutil.Process(int((var_dir / "redis.pid").read_text())).name() == "redis-server"

    stopped = embedded_command(servers, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not port_answers(pg_port) and not port_answers(redis_port)
    assert "down" in embedded_command(servers, "status").stdout


def test_every_process_finds_the_same_servers(servers):
    var_dir = Path(servers["ORCHESTRATOR_VAR_DIR"])
    assert embedded_command(servers, "start").returncode == 0
    first = postmaster_pid(var_dir)
    # A manage.py command with no DATABASE_URL connects to them instead of starting its own.
    probe = "from django.db import connection; print(connection.cursor().connection.info.port)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", probe],
        cwd=REPO, env=servers, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == servers["EMBEDDED_POSTGRES_PORT"]
    assert postmaster_pid(var_dir) == first


def test_it_restarts_after_a_crash_that_left_a_postmaster_pid_naming_a_reused_pid(servers):
    var_dir = Path(servers["ORCHESTRATOR_VAR_DIR"])
    assert embedded_command(servers, "start").returncode == 0
    postmaster = psutil.Process(postmaster_pid(var_dir))
    backends = postmaster.children()
    postmaster.send_signal(signal.SIGKILL)
    psutil.wait_procs([postmaster, *backends], timeout=30)
    # After a container restart the PID in the stale file often belongs to some other live process of
    # the same user, and Postgres then refuses to start ("lock file already exists").
    same_user = embedded.PG_SYSTEM_USER if os.geteuid() == 0 else None
    with subprocess.Popen(["sleep", "300"], user=same_user) as squatter:
        pidfile = var_dir / "postgres" / "postmaster.pid"
        lines = pidfile.read_text().splitlines()
        pidfile.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")
        try:
            result = embedded_command(servers, "start")
            assert result.returncode == 0, result.stderr
            assert port_answers(servers["EMBEDDED_POSTGRES_PORT"])
            assert postmaster_pid(var_dir) != squatter.pid
        finally:
            squatter.kill()


@pytest.fixture
def impostor():
    """A port held by a server that is neither PostgreSQL nor Redis."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize(
    ("variable", "what", "url_variable"),
    [("EMBEDDED_POSTGRES_PORT", "PostgreSQL", "DATABASE_URL"), ("EMBEDDED_REDIS_PORT", "Redis", "REDIS_URL")],
)
def test_a_port_held_by_something_else_is_a_clear_error(servers, impostor, variable, what, url_variable):
    env = {**servers, variable: str(impostor)}
    started = time.monotonic()
    result = embedded_command(env, "start")
    assert result.returncode != 0
    assert f"port {impostor} on 127.0.0.1 is in use by something that is not {what}" in result.stderr
    assert variable in result.stderr and url_variable in result.stderr
    assert time.monotonic() - started < 60
