"""What the notifier service hears: agent status changes and unregistrations, and tasks that failed for
good. Receivers of the agents' and tasks' signals, connected in MonitoringConfig.ready().

Delivery is a Celery job enqueued after commit, so a rolled-back change is never announced and a slow
notifier never slows a request. The message id is fixed when the event happens, so every retry of one
event carries the same `webhook-id` and the receiver can drop duplicates (Standard Webhooks).
"""

import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from orchestrator_project import ids

from .jobs import send_notification


def notify(event, payload):
    """Queue `{"type": event, "data": payload, "timestamp": ...}` for the notifier, after commit."""
    if not settings.NOTIFIER_SERVICE_URL:
        return
    body = json.dumps(
        {"type": event, "data": payload, "timestamp": timezone.now().isoformat()}, cls=DjangoJSONEncoder
    )
    message_id = f"msg_{ids.uuid4().hex}"
    transaction.on_commit(lambda: send_notification.delay(body, message_id))


def on_agent_status_changed(changes, **_):
    for change in changes:
        notify(
            "agent.status_changed",
            {
                "agent_id": str(change.agent_id),
                "name": change.name,
                "old_status": change.old_status or None,
                "status": change.status,
                "reason": change.reason,
                "timestamp": change.at.isoformat(),
            },
        )


def on_agent_unregistered(agent_id, name, old_status, at, **_):
    notify(
        "agent.unregistered",
        {"agent_id": str(agent_id), "name": name, "old_status": old_status, "timestamp": at.isoformat()},
    )


def on_tasks_failed(failures, **_):
    for failure in failures:
        notify("task.failed", {**failure, "task_id": str(failure["task_id"])})
