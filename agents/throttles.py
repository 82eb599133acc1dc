from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from orchestrator_project.accounts.models import ApiToken
from orchestrator_project.accounts.roles import is_agent


class HeartbeatThrottle(SimpleRateThrottle):
    """Per credential, not per address: many agents may sit behind one NAT, and one agent cannot spend
    another's budget. Counters live in the shared Redis cache, so the limit holds across web processes."""

    scope = "heartbeat"

    def get_rate(self):
        # Read per request, not copied at import: a changed HEARTBEAT_RATE (or a test override) applies.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        user = request.user
        if is_agent(user):
            ident = f"agent:{user.agent.pk}"
        elif isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.pk}"
        else:
            ident = f"user:{user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
