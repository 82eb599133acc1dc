"""`make run` serves /health, /admin/ and /docs, with its own embedded Postgres and Redis when the URLs are
unset and with the given servers (starting nothing) when they are set; one Ctrl-C stops web, worker and
beat. With no URLs it is the production configuration on loopback: DEBUG off, a secret key kept in var/
across restarts, a superuser with a random password shown once, a web process per core. These start the
real thing through make, the way the README says to.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import pytest
from django.conf import settings

from orchestrator_project.machine import usable_cpu_count
from tests.test_embedded_services import REPO, embedded_command, embedded_env, free_port, port_answers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
START_DEADLINE = 300  # a first start runs initdb and every migration
STOP_DEADLINE = 60


class Stack:
    """A `make run` in its own process group, its output in a file."""

    def __init__(self, env, log_path):
        self.env = env
        self.base = f"http://127.0.0.1:{env['SERVICE_PORT']}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.make = subprocess.Popen(
                ["make", "--no-print-directory", "run"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.children = []

    def output(self):
        return self.log_path.read_text(errors="replace")

    def wait_until_healthy(self):
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            assert self.make.poll() is None, f"make run exited with {self.make.returncode}:\n{self.output()}"
            try:
                response = httpx.get(f"{self.base}/health", timeout=2)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling interval
        raise AssertionError(f"/health did not answer within {START_DEADLINE}s:\n{self.output()}")

    def wait_for_processes(self):
        """web, worker, beat and the event relay: the processes below make, by role."""
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            roles = {}
            for proc in psutil.Process(self.make.pid).children(recursive=True):
                with_args = " ".join(proc.cmdline())
                if "uvicorn" in with_args:
                    roles["web"] = proc
                elif "celery" in with_args and " worker" in with_args:
                    roles["worker"] = proc
                elif "celery" in with_args and " beat" in with_args:
                    roles["beat"] = proc
                elif "relay_events" in with_args:
                    roles["relay"] = proc
            if len(roles) == 4:
                self.children = psutil.Process(self.make.pid).children(recursive=True)
                return roles
            time.sleep(0.2)
        raise AssertionError(f"web, worker, beat and relay did not all start:\n{self.output()}")

    def interrupt(self):
        """What a Ctrl-C in the terminal does: SIGINT to the foreground process group."""
        os.killpg(self.make.pid, signal.SIGINT)
        self.make.wait(STOP_DEADLINE)

    def kill(self):
        for proc in [*self.children]:
            if is_alive(proc):
                proc.kill()
        if self.make.poll() is None:
            os.killpg(self.make.pid, signal.SIGKILL)
            self.make.wait()


def is_alive(proc):
    # Orphans are reaped by PID 1, which in a container may never happen: a zombie has exited.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(processes):
    deadline = time.monotonic() + STOP_DEADLINE
    while time.monotonic() < deadline and any(is_alive(p) for p in processes):
        time.sleep(0.1)
    return [p for p in processes if is_alive(p)]


def assert_it_serves_health_admin_and_docs(base):
    health = httpx.get(f"{base}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    admin = httpx.get(f"{base}/admin/", timeout=10)
    assert admin.status_code == 302 and admin.headers["location"].startswith("/admin/login/")
    login = httpx.get(f"{base}/admin/login/", timeout=10)
    assert login.status_code == 200 and 'name="username"' in login.text
    docs = httpx.get(f"{base}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    css = httpx.get(f"{base}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css", timeout=10)
    assert css.status_code == 200


def assert_the_first_lines_say_where_things_are(stack):
    first_lines = "\n".join(stack.output().splitlines()[:8])
    for where in ("/admin/", "/dashboard/", "/docs"):
        assert f"{stack.base}{where}" in first_lines, first_lines


def assert_the_relay_leads(base):
    """The default sink (Redis Streams) needs nothing more: the relay takes the lead and publishes."""
    deadline = time.monotonic() + START_DEADLINE
    while not httpx.get(f"{base}/health/detailed", timeout=10).json()["checks"]["event_relay"].get("leader"):
        assert time.monotonic() < deadline, "the event relay never took the lead"
        time.sleep(0.2)  # polling interval


def assert_one_ctrl_c_stops_web_worker_and_beat(stack):
    stack.wait_for_processes()
    everything = list(stack.children)  # Uvicorn's worker processes too
    stack.interrupt()
    assert wait_until_gone(everything) == []
    assert not port_answers(stack.env["SERVICE_PORT"])


def the_password_shown(output):
    shown = re.findall(r"^Created superuser 'admin' with the password (\S+)$", output, re.M)
    assert len(shown) == 1, output
    return shown[0]


def log_in_to_the_admin(base, password):
    """A browser's login: the form's CSRF token, then the POST; returns the session's cookies."""
    with httpx.Client(base_url=base, timeout=10) as browser:
        form = browser.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        login = browser.post(
            "/admin/login/?next=/admin/",
            data={"username": "admin", "password": password, "csrfmiddlewaretoken": token},
        )
        assert login.status_code == 302 and login.headers["location"] == "/admin/", login.text[:2000]
        assert browser.get("/admin/").status_code == 200
        return dict(browser.cookies)


def assert_it_is_production_on_loopback(stack, roles):
    # DEBUG off: a missing page is a plain 404, not Django's list of URL patterns.
    missing = httpx.get(f"{stack.base}/no-such-page", timeout=10)
    assert missing.status_code == 404 and "URL patterns" not in missing.text
    assert httpx.get(f"{stack.base}/admin/login/", timeout=10).headers["x-frame-options"] == "DENY"
    web = roles["web"]
    listening = {c.laddr for c in web.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert {(address.ip, address.port) for address in listening} == {
        ("127.0.0.1", int(stack.env["SERVICE_PORT"]))
    }
    # One Uvicorn worker process per usable core, under the parent the supervisor started.
    workers = [p for p in web.children() if "multiprocessing.spawn" in " ".join(p.cmdline())]
    assert len(workers) == usable_cpu_count()


@pytest.fixture
def var_dir():
    """A var dir outside pytest's own temporary tree. As root the embedded PostgreSQL runs as another
    user, who must be able to reach its data directory; pytest makes /tmp/pytest-of-root private again
    whenever any session starts, and other sessions may be running on this machine."""
    path = Path(tempfile.mkdtemp(prefix="orchestrator-make-run-"))
    path.chmod(0o755)
    yield path / "var"
    shutil.rmtree(path, ignore_errors=True)


def test_make_run_with_no_urls_starts_its_own_postgres_and_redis(tmp_path, var_dir):
    env = embedded_env(
        var_dir, SERVICE_PORT=str(free_port()), CELERY_QUEUE=f"two-commands-{uuid.uuid4().hex[:8]}"
    )
    env.pop("DJANGO_SUPERUSER_USERNAME", None)
    env.pop("DJANGO_SUPERUSER_PASSWORD", None)
    stack = Stack(env, tmp_path / "make-run.log")
    again = None
    try:
        stack.wait_until_healthy()
        assert_it_serves_health_admin_and_docs(stack.base)
        assert_the_first_lines_say_where_things_are(stack)
        assert_it_is_production_on_loopback(stack, stack.wait_for_processes())
        assert_the_relay_leads(stack.base)
        # A superuser with a password of its own, shown once; the secret key kept where only we read it.
        password = the_password_shown(stack.output())
        assert password != "admin" and "admin / admin" not in stack.output()
        session = log_in_to_the_admin(stack.base, password)
        key_file = var_dir / "secret_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text()
        # Its servers run from the var dir it was given, on the ports it was given.
        assert (var_dir / "postgres" / "PG_VERSION").exists() and (var_dir / "redis.pid").exists()
        assert port_answers(env["EMBEDDED_POSTGRES_PORT"]) and port_answers(env["EMBEDDED_REDIS_PORT"])
        assert_one_ctrl_c_stops_web_worker_and_beat(stack)

        # Started again: the same key (the session from before still logs in), no new password shown.
        again = Stack(env, tmp_path / "make-run-again.log")
        again.wait_until_healthy()
        assert key_file.read_text() == key
        assert httpx.get(f"{again.base}/admin/", cookies=session, timeout=10).status_code == 200
        assert "with the password" not in again.output()
        assert_one_ctrl_c_stops_web_worker_and_beat(again)
    finally:
        for started in (stack, again):
            if started is not None:
                started.kill()
        stopped = embedded_command(env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not port_answers(env["EMBEDDED_POSTGRES_PORT"]) and not port_answers(env["EMBEDDED_REDIS_PORT"])


@pytest.fixture
def own_database_url():
    """A fresh, empty database on the test session's PostgreSQL; dropped afterwards."""
    name = f"two_commands_{uuid.uuid4().hex[:12]}"
    server = urlsplit(settings.DATABASE_URL)
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(server._replace(path=f"/{name}"))
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_make_run_with_urls_uses_those_servers_and_starts_nothing(tmp_path, own_database_url):
    var_dir = tmp_path / "var"
    redis_db = (int(os.environ.get("TEST_REDIS_DB", "9")) + 1) % 16
    redis_url = urlunsplit(urlsplit(settings.REDIS_URL)._replace(path=f"/{redis_db}"))
    env = embedded_env(
        var_dir,
        DATABASE_URL=own_database_url,
        REDIS_URL=redis_url,
        # Explicit URLs otherwise mean a deployment (DEBUG off, a SECRET_KEY of its own); this is a
        # developer pointing `make run` at servers of their own.
        DEBUG="true",
        SERVICE_HOST="127.0.0.1",
        SERVICE_PORT=str(free_port()),
        CELERY_QUEUE=f"two-commands-{uuid.uuid4().hex[:8]}",
        DJANGO_SUPERUSER_USERNAME="root-of-trust",
        DJANGO_SUPERUSER_PASSWORD=uuid.uuid4().hex,
    )
    stack = Stack(env, tmp_path / "make-run.log")
    try:
        stack.wait_until_healthy()
        assert_it_serves_health_admin_and_docs(stack.base)
        assert_the_first_lines_say_where_things_are(stack)
        assert "Embedded" not in stack.output()
        # It migrated the database it was given and created the configured superuser there.
        with psycopg.connect(own_database_url) as conn:
            users = conn.execute("SELECT username, is_superuser FROM auth_user").fetchall()
        assert users == [("root-of-trust", True)]
        assert_one_ctrl_c_stops_web_worker_and_beat(stack)
    finally:
        stack.kill()
    # Nothing was started: no data in the var dir, nothing on the embedded ports.
    assert not (var_dir / "postgres").exists() and not (var_dir / "redis.pid").exists()
    assert not port_answers(env["EMBEDDED_POSTGRES_PORT"]) and not port_answers(env["EMBEDDED_REDIS_PORT"])
    assert not Path(var_dir).exists() or list(Path(var_dir).iterdir()) == []
