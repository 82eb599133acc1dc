"""`pytest -p tests.chaos.plugin tests/chaos`: the chaos suite on its own throwaway PostgreSQL and Redis.

The scenarios restart and shut down these servers, so they must never be the ones other test runs or a
`make run` use. Before pytest-django reads the settings, this plugin starts a private pair with
embedded.py's own code (pointed at a temporary directory and free ports) and exports DATABASE_URL and
REDIS_URL; at the end it stops them, deletes their data and prints what each scenario measured.
"""

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

REPORT_PATH = Path(__file__).resolve().parents[2] / "test-artifacts" / "chaos-report.json"

servers_key = pytest.StashKey["Servers"]()
# Filled by tests.chaos.books.record(): one row per scenario, printed at the end and written to REPORT_PATH.
measurements = []


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Servers:
    """The private PostgreSQL and Redis of this run, and the faults the scenarios inject into them."""

    def __init__(self):
        self.var_dir = Path(tempfile.mkdtemp(prefix="orchestrator-chaos-"))
        # embedded.py reads these when it is imported; nothing has imported it yet in this process.
        os.environ["ORCHESTRATOR_VAR_DIR"] = str(self.var_dir)
        os.environ["EMBEDDED_POSTGRES_PORT"] = str(_free_port())
        os.environ["EMBEDDED_REDIS_PORT"] = str(_free_port())
        from orchestrator_project import embedded

        self.embedded = embedded
        assert embedded.VAR_DIR == self.var_dir, "orchestrator_project.embedded was imported too early"

    def start(self):
        os.environ["DATABASE_URL"] = self.embedded.ensure_postgres()
        os.environ["REDIS_URL"] = self.embedded.ensure_redis()
        return self

    def stop(self):
        self.embedded.stop()
        # The servers' own logs (deadlocks, restarts, recovery) are worth keeping next to the report.
        for name in ("postgres.log", "redis.log"):
            if (self.var_dir / name).exists():
                REPORT_PATH.parent.mkdir(exist_ok=True)
                shutil.copy(self.var_dir / name, REPORT_PATH.parent / f"chaos-{name}")
        shutil.rmtree(self.var_dir, ignore_errors=True)

    @property
    def redis_port(self):
        return self.embedded.REDIS_PORT

    def restart_postgres_immediately(self):
        """`pg_ctl -m immediate restart`: every connection drops, and the server recovers from its WAL."""
        embedded = self.embedded
        pgdata = self.var_dir / "postgres"
        embedded._run_pg(
            [
                embedded._pg_bin("pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(self.var_dir / "postgres.log"),
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "restart",
            ],
            embedded._pg_run_as(),
        )

    def shutdown_redis_without_saving(self):
        import redis

        client = redis.Redis(host=self.embedded.HOST, port=self.redis_port)
        try:
            client.shutdown(nosave=True)
        except redis.exceptions.ConnectionError:
            pass  # the server hangs up on the command that stops it
        finally:
            client.close()
        (self.var_dir / "redis.pid").unlink(missing_ok=True)

    def redis_is_up(self):
        return self.embedded._port_open(self.redis_port)

    def start_redis(self):
        self.embedded.ensure_redis()


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # A hook wrapper runs before pytest-django's own hook, which loads the settings.
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    early_config.stash[servers_key] = Servers().start()
    yield


def pytest_unconfigure(config):
    servers = config.stash.get(servers_key, None)
    if servers is not None:
        servers.stop()


def pytest_terminal_summary(terminalreporter):
    if not measurements:
        return
    terminalreporter.section("chaos: the books after each scenario")
    for row in measurements:
        terminalreporter.write_line(
            "  ".join(f"{key}={value}" for key, value in row.items() if not isinstance(value, dict | list))
        )
    REPORT_PATH.parent.mkdir(exist_ok=True)
    REPORT_PATH.write_text(json.dumps(measurements, indent=2, default=str) + "\n")
    terminalreporter.write_line(f"written to {REPORT_PATH}")
