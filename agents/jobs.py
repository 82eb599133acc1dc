"""Celery entry points of the agents app. Thin on purpose: each calls one service."""

from celery import shared_task

from . import liveness, probes


@shared_task(ignore_result=True)
def expire_stale_agents():
    return len(liveness.expire_stale_agents())


@shared_task(ignore_result=True)
def probe_agents():
    healthy, failed = probes.probe_agents()
    return {"healthy": len(healthy), "failed": len(failed)}
