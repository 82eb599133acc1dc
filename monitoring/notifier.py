"""Delivery of signed notifications to the seed's notifier service (NOTIFIER_SERVICE_URL).

What is notified, and when, is notifications.py; this module POSTs one message, signed as a Standard
Webhook, and is called by the retrying Celery job (jobs.send_notification).
"""

import base64
import hashlib

import httpx
from django.conf import settings

from orchestrator_project import signing

NOTIFY_TIMEOUT_SECONDS = 10


class NotificationFailed(Exception):
    """The notifier answered with something other than 2xx; worth retrying."""


def signing_key():
    """NOTIFIER_SIGNING_SECRET as a Standard Webhooks secret.

    The setting falls back to SECRET_KEY, which is not a `whsec_` secret; a key derived by hashing keeps
    SECRET_KEY itself off the wire and gives the notifier a value it can configure.
    """
    secret = settings.NOTIFIER_SIGNING_SECRET or ""
    if secret.startswith(signing.SECRET_PREFIX):
        return secret
    return signing.SECRET_PREFIX + base64.b64encode(hashlib.sha256(secret.encode()).digest()).decode()


def deliver(*, body, message_id):
    """POST one notification; raises (and the job retries) unless the notifier answers 2xx."""
    url = settings.NOTIFIER_SERVICE_URL
    if not url:
        return
    content = body.encode()
    headers = {
        "content-type": "application/json",
        **signing.signed_headers(signing_key(), content, message_id=message_id),
    }
    # The URL is the operator's configuration, not user input, so it does not go through the agent
    # egress checks (the notifier may well live outside AGENT_ALLOWED_NETWORKS); redirects stay off.
    with httpx.Client(timeout=NOTIFY_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
        response = client.post(url, content=content, headers=headers)
    if not 200 <= response.status_code < 300:
        raise NotificationFailed(f"notifier answered {response.status_code}")
