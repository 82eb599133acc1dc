"""Celery jobs and hooks of the monitoring app: notifications, and workers announcing that they are
alive (see workers.py)."""

import httpx
from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from orchestrator_project import live

from . import notifier, workers

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
