"""Celery hooks of the monitoring app: workers announce that they are alive (see workers.py)."""

from celery.signals import worker_ready, worker_shutdown

from . import events, workers


@worker_ready.connect
def _announce(sender, **_):
    workers.start_presence(sender.hostname)


@worker_shutdown.connect
def _withdraw(sender, **_):
    workers.withdraw(sender.hostname)
    events.flush()  # the last transitions of a stopping worker still reach the dashboards
