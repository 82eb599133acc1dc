"""Celery hooks of the monitoring app: workers announce that they are alive (see workers.py), and beat
brings its schedule rows up to date with the settings before it runs them (see schedules.py)."""

from celery.signals import beat_init, worker_ready, worker_shutdown

from . import events, schedules, workers


@worker_ready.connect
def _announce(sender, **_):
    workers.start_presence(sender.hostname)


@worker_shutdown.connect
def _withdraw(sender, **_):
    workers.withdraw(sender.hostname)
    events.flush()  # the last transitions of a stopping worker still reach the dashboards


@beat_init.connect
def _apply_schedule_settings(**_):
    # The scheduler has read the rows already; a written row bumps PeriodicTasks, which makes it reload
    # them before its first due sweep.
    schedules.sync_from_settings()
