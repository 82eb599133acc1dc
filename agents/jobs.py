"""Celery entry points of the agents app. Thin on purpose: each calls one service."""

import httpx
from celery import shared_task

from monitoring.beat import record_sweep

from . import liveness, notifier, probes

NOTIFY_MAX_RETRIES = 5


@shared_task(ignore_result=True)
def expire_stale_agents():
    record_sweep("agents.liveness")
    return len(liveness.expire_stale_agents())


@shared_task(ignore_result=True)
def probe_agents():
    record_sweep("agents.probes")
    healthy, failed = probes.probe_agents()
    return {"healthy": len(healthy), "failed": len(failed)}


@shared_task(
    ignore_result=True,
    autoretry_for=(notifier.NotificationFailed, httpx.HTTPError),
    max_retries=NOTIFY_MAX_RETRIES,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
)
def send_notification(body, message_id):
    notifier.deliver(body=body, message_id=message_id)
