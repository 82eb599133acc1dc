from datetime import timedelta

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Value
from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import USER_TOKEN_PREFIX, ApiToken, hash_token
from .roles import AgentPrincipal

AGENT_TOKEN_PREFIX = "aoa_"
# last_used_at is informational; writing it on every request would put a write on every hot path.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def parse_bearer(header_value):
    """The token in an `Authorization: Bearer <token>` header value, or None."""
    if not header_value:
        return None
    parts = header_value.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def resolve_token(raw):
    """The user (or AgentPrincipal) a raw token stands for, or None."""
    if raw.startswith(AGENT_TOKEN_PREFIX):
        from agents.models import Agent

        agent = Agent.objects.filter(token_hash=hash_token(raw)).first()
        return (AgentPrincipal(agent), agent) if agent else None
    if raw.startswith(USER_TOKEN_PREFIX):
        now = timezone.now()
        # One query for the token, its user and the user's role names, which every permission check needs.
        token = (
            ApiToken.objects.active(now)
            .select_related("user")
            .annotate(role_names=ArrayAgg("user__groups__name", default=Value([])))
            .filter(key_hash=hash_token(raw))
            .first()
        )
        if token is None or not token.user.is_active:
            return None
        token.user._orchestrator_groups = {name for name in token.role_names if name}
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token
    return None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` with a user token (aou_…) or an agent token (aoa_…)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        raw = parse_bearer(header)
        if raw is None:
            if header.split(" ", 1)[0].lower() == "bearer":
                raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
            return None
        resolved = resolve_token(raw)
        if resolved is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return resolved

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'
