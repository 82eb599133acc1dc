"""The real stack for the benchmark: the web server (the command `make run` uses), Celery worker(s) and
beat as child processes, fast fake agents, a fresh migrated database, and a sampler of every process's
memory and CPU.

Postgres and Redis come from DATABASE_URL / REDIS_URL when set, else the project's embedded servers.
The benchmark never touches the project's own database: it drops and recreates `orchestrator_bench`
(BENCH_DATABASE to change) on the same server, uses its own Redis database number (BENCH_REDIS_DB,
default 5, flushed at start) and its own Celery queues.

This module is imported before Django is set up: `configure()` decides the URLs and sets the
environment that both the children and this process's own Django use.
"""

import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
# Threads of the baselines' Celery workers; the product's worker has WORKER_CONCURRENCY (8), as `make run`.
WORKER_CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "8")
QUEUE = "orchestrator-bench"
NOOP_QUEUE = "bench-noop"
BASELINE_QUEUE = "bench-baseline"
# The baselines run the ordinary way: one process per core (gunicorn sync workers, Celery prefork).
CORES = os.cpu_count() or 1


def _with_path(url, path):
    return urlunsplit(urlsplit(url)._replace(path=path))


def configure():
    """Pick the servers, recreate the bench database, and export the environment. Returns a dict."""
    from orchestrator_project import embedded

    base_db = os.environ.get("DATABASE_URL") or embedded.ensure_postgres()
    base_redis = os.environ.get("REDIS_URL") or embedded.ensure_redis()
    db_name = os.environ.get("BENCH_DATABASE", "orchestrator_bench")
    database_url = _with_path(base_db, f"/{db_name}")
    redis_url = _with_path(base_redis, f"/{os.environ.get('BENCH_REDIS_DB', '5')}")
    env = {
        "DJANGO_SETTINGS_MODULE": "orchestrator_project.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # `make run`'s settings (DEBUG off, plain HTTP with no proxy in front), with what its embedded
        # mode would bring itself spelled out: the URLs above point at the bench database, so these
        # processes are not in the embedded mode.
        "DEBUG": "false",
        "ORCHESTRATOR_TESTING": "false",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "AGENT_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CELERY_QUEUE": QUEUE,
        "BENCH_NOOP_QUEUE": NOOP_QUEUE,
        "BENCH_BASELINE_QUEUE": BASELINE_QUEUE,
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    _recreate_database(base_db, db_name)
    _flush_redis(redis_url)
    return {"database_url": database_url, "redis_url": redis_url, "db_name": db_name, "env": env}


def _recreate_database(base_db, name):
    import psycopg

    admin = _with_path(base_db, "/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _flush_redis(url):
    import redis

    redis.Redis.from_url(url).flushdb()


def _migrations_digest():
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/*.py")) + sorted(ROOT.glob("*/*/migrations/*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def own_database(name, log_dir):
    """A standalone script's start: its own database (BENCH_DATABASE overrides `name`), fresh and
    migrated, the environment exported, and Django set up in this process."""
    os.environ.setdefault("BENCH_DATABASE", name)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    configure()
    migrate(log_dir)
    import django

    django.setup()


def migrate(log_dir):
    """Migrate the fresh database. The migrated schema is kept as a template named after the migration
    files' digest, so the next run with the same migrations clones it in a second instead of migrating."""
    import psycopg

    started = time.monotonic()
    name = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")
    template = f"{name}_tpl_{_migrations_digest()}"
    admin = _with_path(os.environ["DATABASE_URL"], "/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return time.monotonic() - started
    _run_migrate(log_dir)
    with psycopg.connect(admin, autocommit=True) as conn:
        stale = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
            [f"{name}_tpl_%", template],
        ).fetchall()
        for (old,) in stale:
            conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{template}" TEMPLATE "{name}"')
    return time.monotonic() - started


def _run_migrate(log_dir):
    # The product's schema, then the bare-DRF baseline's own tables (bench/baseline) beside it.
    log = []
    for settings_module in ("orchestrator_project.settings", "bench.baseline.settings"):
        result = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
            cwd=ROOT,
            env=dict(os.environ, DJANGO_SETTINGS_MODULE=settings_module),
            capture_output=True,
            text=True,
            timeout=300,
        )
        log.append(result.stdout + result.stderr)
        if result.returncode != 0:
            (Path(log_dir) / "migrate.log").write_text("".join(log))
            raise RuntimeError(f"migrate ({settings_module}) failed:\n{result.stderr[-3000:]}")
    (Path(log_dir) / "migrate.log").write_text("".join(log))


def _die_with_parent():
    # Runs in the child before exec: if the benchmark is killed outright, the kernel stops its children.
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A child process in its own session, logging to a file (like tests/processes.Child)."""

    def __init__(self, name, args, log_dir, env=None):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(os.environ, **(env or {})),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never printed {text!r}:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout=20):
        import signal

        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        self.log.close()


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(child, port, timeout=30):
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if child.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not start:\n{child.output()[-3000:]}")
            time.sleep(0.05)


def service_commands(port):
    """The commands `make run` starts (orchestrator_project/process_commands.py), as this environment's
    settings make them (configure() exported it, so the children read the same), on the benchmark's port."""
    from django.conf import settings

    from orchestrator_project.process_commands import service_commands as make_run_commands

    return make_run_commands(settings, host="127.0.0.1", port=port)


def _service_env(port):
    return {"SERVICE_PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}


def start_web(log_dir, port):
    # WEB_CONCURRENCY processes, as `make run`: the parent binds the port before its workers have loaded
    # the application, so an open port means requests queue until they have.
    child = Child("web", service_commands(port)["web"], log_dir, _service_env(port))
    wait_for_port(child, port)
    return child


def _celery_worker_args(app, name, queue, *, pool="threads", concurrency=WORKER_CONCURRENCY):
    return [
        sys.executable, "-m", "celery", "-A", app, "worker",
        "--loglevel", "WARNING", "--pool", pool, "--concurrency", str(concurrency),
        "-n", f"{name}@%h", "-Q", queue, "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def start_worker(log_dir, port, name="worker"):
    # `make run`'s worker, named (the benchmark pings it by name and may run two) on the bench queue.
    extra = ["-n", f"{name}@%h", "-Q", QUEUE, "--without-gossip", "--without-mingle"]
    child = Child(name, [*service_commands(port)["worker"], *extra], log_dir, _service_env(port))
    _wait_for_celery(child, name)
    return child


def start_noop_worker(log_dir):
    # The raw-Celery baseline's consumer: a process per core (prefork), so it is not what limits it.
    args = _celery_worker_args("bench.celery_noop", "noop", NOOP_QUEUE, pool="prefork", concurrency=CORES)
    child = Child("noop-worker", args, log_dir)
    _wait_for_celery(child, "noop")
    return child


def start_baseline_web(log_dir, port):
    """The bare-DRF baseline, served the ordinary way: gunicorn, one sync worker per core."""
    args = [
        sys.executable, "-m", "gunicorn", "bench.baseline.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(CORES), "--worker-class", "sync", "--log-level", "warning",
    ]  # fmt: skip
    child = Child("baseline-web", args, log_dir, {"DJANGO_SETTINGS_MODULE": "bench.baseline.settings"})
    wait_for_port(child, port)
    return child


def start_baseline_worker(log_dir, agents_port):
    """The hand-rolled dispatch's Celery worker: prefork, one process per core."""
    args = _celery_worker_args(
        "bench.baseline.celery_app", "baseline", BASELINE_QUEUE, pool="prefork", concurrency=CORES
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.baseline.settings",
        "BENCH_AGENT_URL": f"http://127.0.0.1:{agents_port}",
    }
    child = Child("baseline-worker", args, log_dir, env)
    _wait_for_celery(child, "baseline")
    return child


def _wait_for_celery(child, node, timeout=40):
    # At WARNING Celery prints no "ready." line; ask it over the broker instead.
    from celery import Celery

    probe = Celery(broker=os.environ["REDIS_URL"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited:\n{child.output()[-3000:]}")
            try:
                replies = probe.control.ping(timeout=0.5) or []
            except Exception:
                replies = []
            if any(name.split("@")[0] == node for reply in replies for name in reply):
                return
            time.sleep(0.2)
    finally:
        probe.close()
    raise RuntimeError(f"{child.name} did not answer a ping:\n{child.output()[-3000:]}")


def start_relay(log_dir, port):
    """`make run`'s event relay (unless EVENT_SINK is none): outbox rows go out as they do there."""
    command = service_commands(port).get("relay")
    if command is None:
        return None
    child = Child("relay", command, log_dir, _service_env(port))
    time.sleep(0.5)  # it logs at WARNING here: nothing to wait for but an early exit
    if child.proc.poll() is not None:
        raise RuntimeError(f"the relay exited:\n{child.output()[-3000:]}")
    return child


def start_beat(log_dir, port):
    child = Child("beat", service_commands(port)["beat"], log_dir, {"SERVICE_PORT": str(port)})
    time.sleep(0.5)
    if child.proc.poll() is not None:
        raise RuntimeError(f"beat exited:\n{child.output()[-3000:]}")
    return child


def start_agents(log_dir):
    child = Child("agents", [sys.executable, "-m", "bench.agent_server", "--port", "0"], log_dir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for line in child.output().splitlines():
            if line.startswith("port "):
                child.port = int(line.split()[1])
                return child
        if child.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"agent server did not start:\n{child.output()[-3000:]}")


class Sampler(threading.Thread):
    """Samples RSS (the largest process of each tree) and CPU (the whole tree) of the named processes every
    `interval` seconds.

    `mark(label)` starts a new window; `window(label)` gives each process's peak RSS and mean CPU there.
    """

    def __init__(self, interval=0.2):
        super().__init__(name="bench-sampler", daemon=True)
        self.interval = interval
        self.processes = {}
        self.peak = {}
        self.windows = {}
        self.current = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        psutil.cpu_percent(None)

    def watch(self, name, pid):
        with self._lock:
            self.processes[name] = psutil.Process(pid)

    def unwatch(self, name):
        with self._lock:
            self.processes.pop(name, None)

    def mark(self, label):
        with self._lock:
            self.current = label
            cpu = {name: self._cpu_time(proc) for name, proc in self.processes.items()}
            self.windows[label] = {
                "rss": {},
                "start": time.monotonic(),
                "cpu_start": cpu,
                "sys_cpu": [],
                "loadavg_start": os.getloadavg()[0],
            }
            psutil.cpu_percent(None)

    def end(self):
        with self._lock:
            if self.current is None:
                return
            window = self.windows[self.current]
            elapsed = max(1e-6, time.monotonic() - window["start"])
            window["cpu_percent"] = {
                name: round(100 * (self._cpu_time(proc) - window["cpu_start"].get(name, 0.0)) / elapsed, 1)
                for name, proc in self.processes.items()
                if name in window["cpu_start"]
            }
            window["cpu_percent"]["machine"] = (
                round(sum(window["sys_cpu"]) / len(window["sys_cpu"]), 1)
                if window["sys_cpu"]
                else psutil.cpu_percent(None)
            )
            window["elapsed_s"] = round(elapsed, 2)
            window["loadavg"] = [round(window["loadavg_start"], 2), round(os.getloadavg()[0], 2)]
            self.current = None

    @staticmethod
    def _tree(proc):
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return []

    def _cpu_time(self, proc):
        return tree_cpu_seconds(proc)

    def _rss(self, proc):
        """The largest RSS of one process in the tree: each web or worker process must stay within the
        memory budget (a web server of N worker processes is N of them, not one)."""
        largest = 0
        for p in self._tree(proc):
            try:
                largest = max(largest, p.memory_info().rss)
            except psutil.Error:
                pass
        return largest

    def run(self):
        # Bounded: a sampler nobody stops gives up after two hours.
        deadline = time.monotonic() + 7200
        while not self._halt.wait(self.interval) and time.monotonic() < deadline:
            with self._lock:
                window = self.windows.get(self.current) if self.current else None
                if window is not None:
                    window["sys_cpu"].append(psutil.cpu_percent(None))
                for name, proc in self.processes.items():
                    rss = self._rss(proc)
                    if rss:
                        self.peak[name] = max(self.peak.get(name, 0), rss)
                        if window is not None:
                            window["rss"][name] = max(window["rss"].get(name, 0), rss)

    def stop(self):
        self._halt.set()

    def window(self, label):
        window = self.windows.get(label, {})
        return {
            "peak_rss_mb": {name: round(rss / 2**20, 1) for name, rss in window.get("rss", {}).items()},
            "cpu_percent": window.get("cpu_percent", {}),
            "loadavg_1min_start_end": window.get("loadavg"),
        }


def tree_cpu_seconds(proc):
    """CPU seconds (user + system) spent so far by a process and its living children."""
    total = 0.0
    for p in Sampler._tree(proc):
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class Stack:
    """Starts and stops the service processes; `restart_service()` gives a scenario a clean slate."""

    cores = CORES
    root = ROOT

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.port = free_port()
        self.children = {}
        self.sampler = Sampler()

    def _add(self, child):
        self.children[child.name] = child
        self.sampler.watch(child.name, child.pid)
        return child

    def start(self, *, beat=True):
        self.sampler.start()
        self._add(start_agents(self.log_dir))
        self.agents_port = self.children["agents"].port
        self._add(start_web(self.log_dir, self.port))
        self._add(start_worker(self.log_dir, self.port))
        if beat:
            self._add(start_beat(self.log_dir, self.port))
        relay = start_relay(self.log_dir, self.port)
        if relay is not None:
            self._add(relay)
        self.start_baseline()

    def describe(self):
        """{process: its command line}, for the report: what exactly was measured."""
        return {name: " ".join(str(arg) for arg in child.proc.args) for name, child in self.children.items()}

    def stop_child(self, name):
        child = self.children.pop(name, None)
        if child is not None:
            self.sampler.unwatch(name)
            child.stop()

    def start_noop_worker(self):
        return self._add(start_noop_worker(self.log_dir))

    def start_baseline(self):
        """The bare-DRF baseline's web and dispatch worker (bench/baseline), beside the product."""
        self.baseline_port = free_port()
        self._add(start_baseline_web(self.log_dir, self.baseline_port))
        self._add(start_baseline_worker(self.log_dir, self.agents_port))

    def start_worker(self):
        return self._add(start_worker(self.log_dir, self.port))

    def start_beat(self):
        return self._add(start_beat(self.log_dir, self.port))

    def stop(self):
        for name in list(self.children):
            self.stop_child(name)
        self.sampler.stop()
