"""Celery entry points of the outbox. Thin on purpose: each calls one service."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import replays


@shared_task(ignore_result=True)
def prune_outbox():
    """Retention (EVENT_RETENTION_DAYS): run hourly by beat (migration 0002)."""
    return replays.prune(older_than=timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS))
