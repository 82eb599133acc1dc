"""`make run`: prepare the database, then run the web server, a Celery worker and Celery beat together.

All three run in the foreground as children of this process; Ctrl-C (or SIGTERM) stops them all, and if
any one of them dies the others are stopped too, so a half-running stack never lingers.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

STOP_GRACE_SECONDS = 30


def _django_setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_project.settings")
    import django

    django.setup()


def prepare():
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    call_command("ensure_superuser")
    call_command("register_seed_services")


def banner(settings):
    base = f"http://{'127.0.0.1' if settings.SERVICE_HOST in ('0.0.0.0', '::') else settings.SERVICE_HOST}"
    base = f"{base}:{settings.SERVICE_PORT}"
    lines = [
        f"Agent Orchestrator {settings.VERSION} on {base}",
        f"  Admin:      {base}/admin/",
        f"  Dashboard:  {base}/dashboard/",
        f"  API docs:   {base}/docs  (ReDoc: {base}/redoc, schema: {base}/api/schema/)",
        f"  Health:     {base}/health",
    ]
    if settings.EMBEDDED_SERVICES:
        lines.append(f"  Embedded services: DATABASE_URL={settings.DATABASE_URL} REDIS_URL={settings.REDIS_URL}")
    if not os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
        lines.append("  Login: admin / admin (development default; set DJANGO_SUPERUSER_USERNAME/PASSWORD)")
    print("\n".join(lines), flush=True)


def commands(settings, *, reload):
    python = sys.executable
    web = (
        [python, "manage.py", "runserver", f"{settings.SERVICE_HOST}:{settings.SERVICE_PORT}"]
        if reload
        else [python, "-m", "daphne", "-b", settings.SERVICE_HOST, "-p", str(settings.SERVICE_PORT),
              "--proxy-headers", "orchestrator_project.asgi:application"]
    )
    return {
        "web": web,
        "worker": [python, "-m", "celery", "-A", "orchestrator_project", "worker", "--loglevel", "INFO",
                   "--pool", "threads", "--concurrency", os.environ.get("WORKER_CONCURRENCY", "8")],
        "beat": [python, "-m", "celery", "-A", "orchestrator_project", "beat", "--loglevel", "INFO"],
    }


def supervise(processes):
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, proc in processes.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the others", file=sys.stderr, flush=True)
                exit_code = proc.returncode or 1
                stopping = True
        time.sleep(0.2)
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in processes.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return exit_code


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reload", action="store_true", help="restart the web server when code changes")
    args = parser.parse_args()
    _django_setup()
    from django.conf import settings

    prepare()
    banner(settings)
    env = dict(os.environ, DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL)
    if settings.DEBUG:
        env.setdefault("DEBUG", "true")
    # Each child gets its own process group so that Ctrl-C reaches them through us, in order.
    processes = {
        name: subprocess.Popen(cmd, env=env, start_new_session=True)
        for name, cmd in commands(settings, reload=args.reload).items()
    }
    sys.exit(supervise(processes))


if __name__ == "__main__":
    main()
