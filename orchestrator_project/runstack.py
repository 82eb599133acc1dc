"""`make run` and `make dev`: prepare the database, then run the web server, a Celery worker, Celery beat
and the event relay (unless EVENT_SINK=none), and keep them running.

`make run` is the production configuration (DEBUG off) on this machine; `make dev` (`--dev`) turns
DEBUG on and reloads the web server on code changes. The processes run in the foreground as
children of this one, with the commands of process_commands.py and this process's own environment,
so they read exactly the settings it read. A crashed child is restarted with backoff, and one that keeps
crashing stops the service (supervisor.py; RUNSTACK_* settings). Ctrl-C (or SIGTERM) stops them all; a
second Ctrl-C kills them.
"""

import argparse
import errno
import os
import socket
import sys

# Longer than the worker's own grace for in-flight agent calls (WORKER_SHUTDOWN_GRACE, 30 s by default).
STOP_GRACE_SECONDS = 45


def _django_setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_project.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as exc:
        # The message names the variable and what it must be; thirty lines of import machinery above
        # it only hide it from an operator.
        sys.exit(f"Cannot start: {exc}\n(docs/configuration.md lists every setting.)")


def prepare(settings):
    from django.core.management import call_command

    print("Preparing the database (migrate, superuser, seed services)...", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    call_command("ensure_superuser")
    call_command("register_seed_services")
    if not (settings.DEBUG or settings.TESTING):
        # Production static storage serves from the hashed manifest that collectstatic writes.
        call_command("collectstatic", interactive=False, verbosity=0)


def port_in_use(host, port):
    """Whether another process already listens on the web server's address. Checked before anything
    starts: uvicorn would fail on it, and the supervisor would restart it until the crash limit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE  # any other error is uvicorn's to report
    return False


def _events_line(settings):
    if settings.EVENT_SINK == "none":
        return "off (EVENT_SINK=none)"
    topics = ", ".join(settings.EVENT_TOPICS.values())
    if settings.EVENT_SINK == "kafka":
        return f"Kafka at {settings.KAFKA_BOOTSTRAP_SERVERS}, topics {topics}"
    return f"Redis Streams {topics} (docs/events.md)"


def banner(settings, *, dev):
    host = "127.0.0.1" if settings.SERVICE_HOST in ("0.0.0.0", "::") else settings.SERVICE_HOST
    base = f"http://{host}:{settings.SERVICE_PORT}"
    mode = "DEBUG on" if settings.DEBUG else "production settings"
    if dev:
        mode += ", the web server reloads on code changes"
    else:
        mode += f", {settings.WEB_CONCURRENCY} web processes"
    lines = [
        f"Agent Orchestrator {settings.VERSION} on {base} ({mode})",
        f"  Admin:      {base}/admin/",
        f"  Dashboard:  {base}/dashboard/",
        f"  API docs:   {base}/docs  (ReDoc: {base}/redoc, schema: {base}/api/schema/)",
        f"  Health:     {base}/health",
        f"  Events:     {_events_line(settings)}",
    ]
    if settings.EMBEDDED_SERVICES:
        lines.append(f"  Embedded:   DATABASE_URL={settings.DATABASE_URL} REDIS_URL={settings.REDIS_URL}")
    print("\n".join(lines), flush=True)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="DEBUG on (unless DEBUG is set) and reload the web server on changes",
    )
    args = parser.parse_args()
    if args.dev:
        # Before the settings are read, here and (through the environment) in every child.
        os.environ.setdefault("DEBUG", "true")
    _django_setup()
    from django.conf import settings

    from orchestrator_project.process_commands import service_commands
    from orchestrator_project.supervisor import RestartPolicy, Supervisor

    if port_in_use(settings.SERVICE_HOST, settings.SERVICE_PORT):
        sys.exit(
            f"Cannot start: port {settings.SERVICE_PORT} on {settings.SERVICE_HOST} is in use (another"
            " `make run`?). Stop it, or set SERVICE_PORT to another port."
        )
    banner(settings, dev=args.dev)
    prepare(settings)
    policy = RestartPolicy(
        initial=settings.RUNSTACK_BACKOFF_INITIAL,
        maximum=settings.RUNSTACK_BACKOFF_MAX,
        limit=settings.RUNSTACK_CRASH_LIMIT,
        window=settings.RUNSTACK_CRASH_WINDOW,
    )
    # The children inherit this environment unchanged: with no URLs they find the same embedded servers
    # and the same var/ secret key, so their settings are the ones read above.
    supervisor = Supervisor(
        service_commands(settings, dev=args.dev),
        env=dict(os.environ),
        policy=policy,
        stop_grace=STOP_GRACE_SECONDS,
    )
    sys.exit(supervisor.run())


if __name__ == "__main__":
    main()
