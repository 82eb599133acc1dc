import hashlib

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class TokenEndpointThrottle(SimpleRateThrottle):
    """Limits password attempts per client address and, separately, per username (shared via Redis)."""

    scope = "auth"

    def get_rate(self):
        # DRF copies DEFAULT_THROTTLE_RATES onto the class at import time; reading them here instead
        # lets a changed setting (an override in tests, a reloaded config) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenUsernameThrottle(TokenEndpointThrottle):
    # Per username as well: a guesser spreading attempts over many addresses still hits this limit.

    def get_cache_key(self, request, view):
        data = request.data
        # A body that is not an object (a JSON list, say) has no username; the serializer rejects it.
        username = str(data.get("username", ""))[:150].lower() if hasattr(data, "get") else ""
        if not username:
            return None
        # Hashed: a username is arbitrary text, a cache key should not be (control characters, length).
        ident = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_format % {"scope": f"{self.scope}-user", "ident": ident}
