"""Celery jobs and hooks of the monitoring app: notifications, workers announcing that they are alive
(see workers.py), and beat bringing its schedule rows up to date with the settings before it runs them
(see schedules.py)."""

import httpx
from celery import shared_task
from celery.signals import beat_init, worker_ready, worker_shutdown

from orchestrator_project import live

from . import notifier, schedules, workers

NOTIFY_MAX_RETRIES = 5


@shared_task(
    name="monitoring.send_notification",
    ignore_result=True,
    autoretry_for=(notifier.NotificationFailed, httpx.HTTPError),
    max_retries=NOTIFY_MAX_RETRIES,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
)
def send_notification(body, message_id):
    notifier.deliver(body=body, message_id=message_id)


@worker_ready.connect
def _announce(sender, **_):
    workers.start_presence(sender.hostname)


@worker_shutdown.connect
def _withdraw(sender, **_):
    workers.withdraw(sender.hostname)
    live.flush()  # the last transitions of a stopping worker still reach the dashboards


@beat_init.connect
def _apply_schedule_settings(**_):
    # The scheduler has read the rows already; a written row bumps PeriodicTasks, which makes it reload
    # them before its first due sweep.
    schedules.sync_from_settings()
