"""The command lines of the service's processes: the web server (Uvicorn), the Celery worker, Celery
beat and, unless EVENT_SINK is none, the event relay (docs/events.md).

One definition for everything that starts them: `make run` and `make dev` (runstack.py), `make bench`
(bench/stack.py), the tests, and the containers, whose command is `python -m orchestrator_project.serve
web|worker|beat` (serve.py). deploy/validate.sh loads this file on its own (no Django, no package
imports) to check that Uvicorn accepts the web command and that the artifacts agree.
"""

import sys
from pathlib import Path

# The web server's flags (Uvicorn with uvloop and httptools: with Daphne the same code answered fewer
# bare API requests and fanned live events out at 1.5 times the CPU; bench/notes.md, "Where the time
# went"). uvloop, httptools and websockets-sansio are named so that a missing one fails the start instead
# of falling back to the slow pure-Python implementations.
# --no-proxy-headers: X-Forwarded-For from any client would pass for its address (throttles, /metrics
#   allow-list); uvicorn trusts it from 127.0.0.1 by default. Proxies are trusted through NUM_PROXIES.
# --no-access-log: RequestIdMiddleware writes one line per request, with its id.
# --lifespan off: Django has no lifespan handlers.
UVICORN_FLAGS = [
    "--no-proxy-headers", "--no-access-log", "--no-server-header", "--lifespan", "off",
    "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
]  # fmt: skip
ASGI_APP = "orchestrator_project.asgi:application"
# Uvicorn's logging in its parent process, which starts and replaces the worker processes and never loads
# Django's settings: in LOG_FORMAT's format, so that its lines ("Started parent process", "Waiting for
# child process") are not the only plain text in a JSON log. Each worker process then takes Django's.
UVICORN_LOG_CONFIGS = {
    log_format: str(Path(__file__).resolve().parent / "uvicorn_logging" / f"{log_format}.json")
    for log_format in ("json", "plain")
}
CELERY_APP = "orchestrator_project"


def web_command(*, host, port, workers, grace, reload=False, log_format="json", python=sys.executable):
    """Uvicorn on host:port with `workers` processes; on SIGTERM open requests get `grace` seconds.
    `log_format` (LOG_FORMAT) is the format of the parent process' own lines.

    Each worker process imports the application itself (asgi.py: Django set up, start-up objects
    frozen); the parent only binds the socket and replaces a worker that dies. `reload` (make dev) runs
    one process that restarts on code changes instead: Uvicorn cannot reload several."""
    # --workers even with --reload: Uvicorn would otherwise read WEB_CONCURRENCY itself, unchecked.
    processes = ["--workers", "1", "--reload"] if reload else ["--workers", str(workers)]
    return [
        python, "-m", "uvicorn", "--host", host, "--port", str(port), *UVICORN_FLAGS,
        "--timeout-graceful-shutdown", str(grace), "--log-config", UVICORN_LOG_CONFIGS[log_format],
        *processes, ASGI_APP,
    ]  # fmt: skip


def _celery(python, quiet):
    # --quiet drops Celery's start-up banner: several lines of text in what is otherwise a JSON log.
    return [python, "-m", "celery", "-A", CELERY_APP, *(["--quiet"] if quiet else [])]


def worker_command(*, concurrency, loglevel="INFO", quiet=False, python=sys.executable):
    # Threads, not prefork: the work is waiting on agents and Postgres, and one process keeps one
    # connection pool and one set of agent connections for all of them.
    return [
        *_celery(python, quiet), "worker", "--loglevel", loglevel, "--pool", "threads",
        "--concurrency", str(concurrency),
    ]  # fmt: skip


def beat_command(*, loglevel="INFO", quiet=False, python=sys.executable):
    # The schedule lives in Postgres (CELERY_BEAT_SCHEDULER: django_celery_beat's DatabaseScheduler).
    return [*_celery(python, quiet), "beat", "--loglevel", loglevel]


def relay_command(*, python=sys.executable):
    # Its own process: it holds the leader's lock on its own connection and blocks on the broker, which
    # a web or worker process must never do. Several may run; one publishes (outbox/relay.py).
    return [python, "-m", "django", "relay_events"]


def service_commands(settings, *, dev=False, host=None, port=None, python=sys.executable):
    """{"web": argv, "worker": argv, "beat": argv, "relay": argv} as `settings` configure them; no relay
    when EVENT_SINK is none (no event is written).

    `dev` is `make dev`'s reloading web server; `host` and `port` override SERVICE_HOST and SERVICE_PORT
    (the benchmark serves on a port of its own)."""
    quiet = settings.LOG_FORMAT == "json"
    return {
        "web": web_command(
            host=host or settings.SERVICE_HOST,
            port=port or settings.SERVICE_PORT,
            workers=settings.WEB_CONCURRENCY,
            grace=settings.WEB_SHUTDOWN_GRACE,
            reload=dev,
            log_format=settings.LOG_FORMAT,
            python=python,
        ),
        "worker": worker_command(
            concurrency=settings.WORKER_CONCURRENCY, loglevel=settings.LOG_LEVEL, quiet=quiet, python=python
        ),
        "beat": beat_command(loglevel=settings.LOG_LEVEL, quiet=quiet, python=python),
        **({} if settings.EVENT_SINK == "none" else {"relay": relay_command(python=python)}),
    }
