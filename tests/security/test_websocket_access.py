"""WebSocket handshakes that must be refused, beyond tests/monitoring/test_live_updates.py (which covers
anonymous, an invalid bearer beside a session, agents on /ws/agents/, no role, a foreign origin with a
session, and a program without Origin).

A refused handshake (foreign origin) never connects; an accepted handshake without the right
credentials is closed at once with 4401 (who are you?) or 4403 (not for you), before any snapshot.
"""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone

from orchestrator_project.accounts.models import ApiToken
from tests.communicator import WebsocketCommunicator
from tests.monitoring.conftest import make_agent, make_watcher, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

STREAMS = ["/ws/tasks/", "/ws/agents/"]


def communicator(path, *, host="testserver", origin="http://testserver", cookie=None, authorization=None):
    from monitoring.routing import websocket_application

    headers = [(b"host", host.encode())]
    for name, value in (("origin", origin), ("cookie", cookie), ("authorization", authorization)):
        if value is not None:
            headers.append((name.encode(), value.encode()))
    return WebsocketCommunicator(websocket_application, path, headers=headers)


async def outcome(comm):
    """ "refused" (handshake denied), the close code, or "open" (a snapshot arrived)."""
    connected, _ = await comm.connect()
    if not connected:
        await comm.disconnect()
        return "refused"
    output = await comm.receive_output(timeout=5)
    await comm.disconnect()
    if output["type"] == "websocket.close":
        return output.get("code")
    return "open"


def _viewer_token(**fields):
    user = User.objects.filter(username="victor-viewer").first() or make_watcher(
        "victor-viewer", group="viewers"
    )
    token, raw = ApiToken.issue(user=user)
    ApiToken.objects.filter(pk=token.pk).update(**fields)
    return raw


def _staff_cookie():
    return session_cookie(make_watcher("stella-staff", superuser=True))


@pytest.mark.parametrize("path", STREAMS)
async def test_no_credentials_at_all_is_4401(path):
    assert await outcome(communicator(path, origin=None)) == 4401


@pytest.mark.parametrize("path", STREAMS)
async def test_an_agent_token_is_4403_on_both_streams(path):
    _, raw = await sync_to_async(make_agent)()
    assert await outcome(communicator(path, authorization=f"Bearer {raw}", origin=None)) == 4403


FOREIGN_ORIGINS = [
    "http://evil.example",
    "null",
    "http://testserver:8080",
    "http://testserver.evil.example",
    "http://evil.example/http://testserver",
    "file://",
    "not a url",
]


async def test_a_foreign_origin_is_refused_whatever_the_credentials():
    token = await sync_to_async(_viewer_token)()
    cookie = await sync_to_async(_staff_cookie)()
    refused = []
    for origin in FOREIGN_ORIGINS:
        for credentials in ({"cookie": cookie}, {"authorization": f"Bearer {token}"}):
            refused.append(await outcome(communicator("/ws/tasks/", origin=origin, **credentials)))
    assert refused == ["refused"] * 2 * len(FOREIGN_ORIGINS)


async def test_an_origin_listed_in_csrf_trusted_origins_is_accepted(settings):
    """The control for the refusals above: the check is on the origin, not on the header's presence."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://dashboard.example.com"]
    cookie = await sync_to_async(_staff_cookie)()
    comm = communicator("/ws/tasks/", origin="https://dashboard.example.com", cookie=cookie)
    assert await outcome(comm) == "open"
    comm = communicator("/ws/tasks/", origin="https://other.example.com", cookie=cookie)
    assert await outcome(comm) == "refused"


async def test_a_revoked_or_expired_token_is_4401():
    now = timezone.now()
    for state in ({"revoked_at": now}, {"expires_at": now - timedelta(seconds=1)}):
        raw = await sync_to_async(_viewer_token)(**state)
        assert await outcome(communicator("/ws/tasks/", authorization=f"Bearer {raw}", origin=None)) == 4401


async def test_a_deactivated_users_token_is_4401():
    raw = await sync_to_async(_viewer_token)()
    await sync_to_async(lambda: User.objects.update(is_active=False))()
    assert await outcome(communicator("/ws/tasks/", authorization=f"Bearer {raw}", origin=None)) == 4401


async def test_a_token_in_the_query_string_is_not_a_credential():
    """Tokens in URLs end up in access logs and browser history; only the header counts."""
    raw = await sync_to_async(_viewer_token)()
    for query in (f"token={raw}", f"access_token={raw}", f"authorization=Bearer%20{raw}"):
        assert await outcome(communicator(f"/ws/tasks/?{query}", origin=None)) == 4401


async def test_a_non_bearer_authorization_header_does_not_fall_back_to_the_session():
    cookie = await sync_to_async(_staff_cookie)()
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Token abc", "Bearer a b"):
        comm = communicator("/ws/tasks/", cookie=cookie, authorization=header)
        assert await outcome(comm) == 4401, header


async def test_a_viewer_token_without_origin_gets_the_stream():
    """The control: the refusals above are about credentials and origin, not about tokens as such."""
    raw = await sync_to_async(_viewer_token)()
    assert await outcome(communicator("/ws/agents/", authorization=f"Bearer {raw}", origin=None)) == "open"
