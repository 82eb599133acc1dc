"""`manage.py relay_events`: the outbox relay, in the foreground until SIGTERM or SIGINT."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestrator_project.outbox.relay import Relay
from orchestrator_project.outbox.sinks import build


class Command(BaseCommand):
    help = "Publish the outbox's events to EVENT_SINK (Kafka or Redis Streams), one leader at a time."

    def handle(self, *args, **options):
        if settings.EVENT_SINK == "none":
            raise CommandError("EVENT_SINK=none: no events are written, so there is nothing to relay")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"relay starting (sink {settings.EVENT_SINK})", ending="\n")
        self.stdout.flush()
        Relay(build(), stop=stop).run()
        self.stdout.write("relay stopped")
