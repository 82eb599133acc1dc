"""Standard Webhooks signatures (https://www.standardwebhooks.com/) for requests to agents and notifiers.

`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the secret's bytes.
Secrets look like `whsec_<base64>`; the base64 part is the key.
"""

import base64
import hashlib
import hmac
import secrets
import time

from orchestrator_project import ids

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


def new_secret():
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret):
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret, message_id, timestamp, body):
    payload = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret, body, *, message_id=None, timestamp=None):
    message_id = message_id or f"msg_{ids.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(secret, headers, body, *, now=None, tolerance=TOLERANCE_SECONDS):
    """True if `headers` carry a valid, fresh signature of `body`. Used by the reference agent."""
    try:
        message_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
