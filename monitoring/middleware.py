"""WebSocket handshake security: same-origin check and `Authorization: Bearer` for programs.

Browsers send the session cookie with any WebSocket they open, whatever page opened it, so the
`Origin` must be this service itself (the request's own Host) or one of CSRF_TRUSTED_ORIGINS; a
browser always sends `Origin` on a WebSocket handshake. Programs (which do not carry a victim's cookies)
may omit it and authenticate with a bearer token instead.
"""

from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from orchestrator_project.accounts.authentication import parse_bearer, resolve_token


def _header(scope, name):
    for key, value in scope.get("headers", []):
        if key.decode("latin-1").lower() == name:
            return value.decode("latin-1")
    return None


def _origin_key(url):
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return None
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    return parts.hostname.lower(), port


def origin_allowed(scope):
    origin = _header(scope, "origin")
    if origin is None:
        return True
    origin_key = _origin_key(origin)
    if origin_key is None:
        return False
    host = _header(scope, "host")
    if host:
        secure = scope.get("scheme") in ("wss", "https")
        host_key = _origin_key(f"{'https' if secure else 'http'}://{host}")
        # Same host and port; the scheme is not compared because TLS may end at a proxy in front of us.
        if host_key == origin_key:
            return True
    return any(_origin_key(trusted) == origin_key for trusted in settings.CSRF_TRUSTED_ORIGINS)


class SameOriginValidator:
    """Refuse the handshake (HTTP 403) when a browser page from another origin opens the socket."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)


class BearerTokenMiddleware(BaseMiddleware):
    """`Authorization: Bearer <token>` sets scope["user"], taking precedence over the session.

    A header that is present but invalid makes the client anonymous (and so refused), rather than
    silently falling back to a cookie.
    """

    async def __call__(self, scope, receive, send):
        header = _header(scope, "authorization")
        if header is not None:
            raw = parse_bearer(header)
            resolved = await database_sync_to_async(resolve_token)(raw) if raw else None
            scope = dict(scope, user=resolved[0] if resolved else AnonymousUser())
        return await super().__call__(scope, receive, send)
