from orchestrator_project.accounts.models import ApiToken
from orchestrator_project.accounts.roles import is_agent
from orchestrator_project.accounts.throttles import AtomicRateThrottle


class HeartbeatThrottle(AtomicRateThrottle):
    """Per credential, not per address: many agents may sit behind one NAT, and one agent cannot spend
    another's budget. Counted atomically in Redis, so the limit holds across web processes."""

    scope = "heartbeat"

    def get_cache_key(self, request, view):
        user = request.user
        if is_agent(user):
            ident = f"agent:{user.agent.pk}"
        elif isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.pk}"
        else:
            ident = f"user:{user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
