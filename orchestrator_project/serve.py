"""`python -m orchestrator_project.serve web|worker|beat|relay [ARGUMENTS...]`: become that process.

The containers' command (Dockerfile, Compose, Kubernetes). It reads the settings as every process does
(SERVICE_HOST, SERVICE_PORT, WEB_CONCURRENCY, WEB_SHUTDOWN_GRACE, WORKER_CONCURRENCY, LOG_LEVEL, ...;
a bad value stops it here, naming the variable) and replaces itself with the command `make run` uses
for that process (process_commands.py), ARGUMENTS appended. Replaced, not wrapped: the server is
PID 1 and receives the container's SIGTERM itself.
"""

import os
import sys

from django.conf import settings  # read on first use, below, once DJANGO_SETTINGS_MODULE is set

from orchestrator_project.process_commands import service_commands

ROLES = ("web", "worker", "beat", "relay")


def main(argv):
    if len(argv) < 2 or argv[1] not in ROLES:
        print(
            f"usage: python -m orchestrator_project.serve {'|'.join(ROLES)} [ARGUMENTS...]", file=sys.stderr
        )
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_project.settings")
    commands = service_commands(settings)
    if argv[1] not in commands:
        print("EVENT_SINK=none: no events are written, so there is no relay to run", file=sys.stderr)
        return 2
    command = [*commands[argv[1]], *argv[2:]]
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
