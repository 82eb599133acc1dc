from rest_framework.throttling import SimpleRateThrottle


class TokenEndpointThrottle(SimpleRateThrottle):
    """Limits password attempts per client address and, separately, per username (shared via Redis)."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenUsernameThrottle(TokenEndpointThrottle):
    def get_cache_key(self, request, view):
        username = str(request.data.get("username", ""))[:150].lower() if hasattr(request, "data") else ""
        if not username:
            return None
        return self.cache_format % {"scope": f"{self.scope}-user", "ident": username}
