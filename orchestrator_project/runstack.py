"""`make run`: prepare the database, then run the web server, a Celery worker and Celery beat together.

All three run in the foreground as children of this process; Ctrl-C (or SIGTERM) stops them all, and if
any one of them dies the others are stopped too, so a half-running stack never lingers.
"""

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

# Longer than the worker's own grace for in-flight agent calls (WORKER_SHUTDOWN_GRACE, 30 s by default).
STOP_GRACE_SECONDS = 45
_PR_SET_PDEATHSIG = 1


def _django_setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_project.settings")
    import django

    django.setup()


def prepare(settings):
    from django.core.management import call_command

    print("Preparing the database (migrate, superuser, seed services)...", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    call_command("ensure_superuser")
    call_command("register_seed_services")
    if not (settings.DEBUG or settings.TESTING):
        # Production static storage serves from the hashed manifest that collectstatic writes.
        call_command("collectstatic", interactive=False, verbosity=0)


def banner(settings):
    host = "127.0.0.1" if settings.SERVICE_HOST in ("0.0.0.0", "::") else settings.SERVICE_HOST
    base = f"http://{host}:{settings.SERVICE_PORT}"
    lines = [
        f"Agent Orchestrator {settings.VERSION} on {base}",
        f"  Admin:      {base}/admin/",
        f"  Dashboard:  {base}/dashboard/",
        f"  API docs:   {base}/docs  (ReDoc: {base}/redoc, schema: {base}/api/schema/)",
        f"  Health:     {base}/health",
    ]
    if not os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
        from orchestrator_project.accounts.management.commands import ensure_superuser

        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or ensure_superuser.DEV_DEFAULT_USERNAME
        lines.append(
            f"  Login:      {username} / {ensure_superuser.DEV_DEFAULT_PASSWORD} (development default; "
            "set DJANGO_SUPERUSER_USERNAME/DJANGO_SUPERUSER_PASSWORD)"
        )
    if settings.EMBEDDED_SERVICES:
        lines.append(f"  Embedded:   DATABASE_URL={settings.DATABASE_URL} REDIS_URL={settings.REDIS_URL}")
    print("\n".join(lines), flush=True)


# The production web server command after `uvicorn` (Dockerfile, Compose and Kubernetes spell out the
# same flags; deploy/validate.sh checks they agree). Uvicorn with uvloop and httptools: with Daphne the
# same code answered fewer bare API requests and fanned live events out at 1.5 times the CPU (measured
# side by side: bench/notes.md, "Where the time went").
# --no-proxy-headers: X-Forwarded-For from any client would pass for its address (throttles, /metrics
#   allow-list); uvicorn trusts it from 127.0.0.1 by default.
# --no-access-log: RequestIdMiddleware writes one JSON line per request, with its id.
# --lifespan off: Django has no lifespan handlers.
# --timeout-graceful-shutdown: on SIGTERM, open requests get this long to finish (WEB_SHUTDOWN_GRACE).
UVICORN_FLAGS = [
    "--no-proxy-headers", "--no-access-log", "--no-server-header", "--lifespan", "off",
    "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
]  # fmt: skip
ASGI_APP = "orchestrator_project.asgi:application"


def web_command(host, port, *, python=None, reload=False):
    grace = os.environ.get("WEB_SHUTDOWN_GRACE", "20")
    return [
        *([python, "-m", "uvicorn"] if python else ["uvicorn"]),
        "--host", host, "--port", str(port), *UVICORN_FLAGS, "--timeout-graceful-shutdown", grace,
        *(["--reload"] if reload else []),
        ASGI_APP,
    ]  # fmt: skip


def commands(settings, *, reload):
    python = sys.executable
    web = web_command(settings.SERVICE_HOST, settings.SERVICE_PORT, python=python, reload=reload)
    celery = [python, "-m", "celery", "-A", "orchestrator_project"]
    concurrency = os.environ.get("WORKER_CONCURRENCY", "8")
    return {
        "web": web,
        "worker": [
            *celery,
            "worker",
            "--loglevel",
            "INFO",
            "--pool",
            "threads",
            "--concurrency",
            concurrency,
        ],
        "beat": [*celery, "beat", "--loglevel", "INFO"],
    }


def _die_with_parent():
    # Runs in the child before exec. If this supervisor is killed outright (SIGKILL, OOM killer) it can
    # not forward anything, so the kernel sends the child SIGTERM instead of leaving it orphaned.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class StopRequest:
    """Set by SIGINT/SIGTERM. A second signal stops the children at once instead of gracefully."""

    def __init__(self):
        self.count = 0
        self.processes = {}
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.count += 1
        if self.count > 1:
            for proc in self.processes.values():
                _signal_group(proc, signal.SIGKILL)

    def __bool__(self):
        return self.count > 0


def _signal_group(proc, signum):
    # The whole group: runserver's reloader has a child of its own that must stop with it.
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass


def spawn(cmds, env, stop_request):
    for name, cmd in cmds.items():
        if stop_request:
            break
        # Each child gets its own process group: a terminal's Ctrl-C reaches only us, and we stop the
        # children in order (and wait for them), instead of them racing each other on the same signal.
        stop_request.processes[name] = subprocess.Popen(
            cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent
        )
    return stop_request.processes


def supervise(processes, stop_request):
    exit_code = 0
    while not stop_request:
        for name, proc in processes.items():
            if proc.poll() is not None:
                print(
                    f"{name} exited with {proc.returncode}; stopping the others", file=sys.stderr, flush=True
                )
                exit_code = proc.returncode or 1
                stop_request.count += 1
                break
        else:
            time.sleep(0.2)
    print("Stopping web, worker and beat...", file=sys.stderr, flush=True)
    for proc in processes.values():
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, proc in processes.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"{name} did not stop within {STOP_GRACE_SECONDS}s; killing it", file=sys.stderr, flush=True
            )
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    return exit_code


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reload", action="store_true", help="restart the web server when code changes")
    args = parser.parse_args()
    _django_setup()
    from django.conf import settings

    banner(settings)
    prepare(settings)
    env = dict(os.environ, DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL)
    if settings.DEBUG:
        # The children see explicit URLs, which on their own would mean production (DEBUG off).
        env.setdefault("DEBUG", "true")
    # Handlers go in before the first child starts, so no Ctrl-C can leave a child without its stopper.
    stop_request = StopRequest()
    processes = spawn(commands(settings, reload=args.reload), env, stop_request)
    sys.exit(supervise(processes, stop_request))


if __name__ == "__main__":
    main()
