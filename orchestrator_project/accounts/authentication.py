from datetime import timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from ..prepared import prepared_cursor
from .models import USER_TOKEN_PREFIX, ApiToken, hash_token

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


def _columns(model, alias):
    fields = model._meta.concrete_fields
    return [field.attname for field in fields], ", ".join(f'{alias}."{field.column}"' for field in fields)


# Other kinds of token (an agent's, in the agents app) are resolved by whoever issues them: prefix ->
# a function of the raw token returning (principal, auth) or None. Registered in AppConfig.ready().
_resolvers = {}


def register_token_resolver(prefix, resolve):
    """Let tokens starting with `prefix` authenticate through `resolve(raw)`."""
    _resolvers[prefix] = resolve


@cache
def _user_token_lookup():
    # One statement for the token, its user and the user's role names, which every permission check
    # needs. Written as SQL because every API request runs it: compiling the equivalent ORM query cost
    # more than the whole rest of a trivial request.
    user_model = get_user_model()
    token_fields, token_columns = _columns(ApiToken, "t")
    user_fields, user_columns = _columns(user_model, "u")
    groups = user_model._meta.get_field("groups")
    through = groups.remote_field.through._meta
    group_table = groups.related_model._meta.db_table
    sql = f"""
        SELECT {token_columns}, {user_columns},
               ARRAY(SELECT g."name" FROM "{through.db_table}" ug
                     JOIN "{group_table}" g ON g."id" = ug."group_id"
                     WHERE ug."{through.get_field("user").column}" = u."id")
        FROM "{ApiToken._meta.db_table}" t JOIN "{user_model._meta.db_table}" u ON u."id" = t."user_id"
        WHERE t."key_hash" = %s AND t."revoked_at" IS NULL AND (t."expires_at" IS NULL OR t."expires_at" > %s)
    """
    return token_fields, user_fields, sql


def fetch_row(sql, params):
    """One row of a prepared statement (token lookups run on every API request)."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def resolve_token(raw):
    """The user (or AgentPrincipal) a raw token stands for, or None."""
    if raw.startswith(USER_TOKEN_PREFIX):
        now = timezone.now()
        token_fields, user_fields, sql = _user_token_lookup()
        row = fetch_row(sql, [hash_token(raw), now])
        if row is None:
            return None
        split = len(token_fields)
        token = ApiToken.from_db(connection.alias, token_fields, row[:split])
        user = get_user_model().from_db(connection.alias, user_fields, row[split:-1])
        if not user.is_active:
            return None
        token.user = user
        user._orchestrator_groups = set(row[-1])
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return user, token
    for prefix, resolve in _resolvers.items():
        if raw.startswith(prefix):
            return resolve(raw)
    return None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` with a user token (aou_…) or a registered kind (agents: aoa_…)."""

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
