import hashlib
import uuid
from functools import lru_cache

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from orchestrator_project.redis_client import get_redis

# A sliding window kept as a sorted set of request times, checked and extended in one script: Redis runs
# it atomically, so concurrent requests in any number of processes cannot both take the last slot.
# Returns {1, 0} when the request is let through, {0, time of the oldest request in the window} if not.
_SLIDING_WINDOW = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now, ARGV[4])
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    return {1, '0'}
end
return {0, redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]}
"""


@lru_cache(maxsize=1)
def _sliding_window():
    return get_redis().register_script(_SLIDING_WINDOW)


class AtomicRateThrottle(SimpleRateThrottle):
    """DRF's SimpleRateThrottle reads the request history from the cache, decides, then writes it back:
    requests that arrive together all read the same history and all pass. This one decides in Redis."""

    key_prefix = "orchestrator:throttle:"

    def get_rate(self):
        # DRF copies DEFAULT_THROTTLE_RATES onto the class at import time; reading them here instead
        # lets a changed setting (an override in tests, a reloaded config) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view):
        self.retry_in = None
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        member = f"{self.now}:{uuid.uuid4().hex}"
        allowed, oldest = _sliding_window()(
            keys=[self.key_prefix + key], args=[self.now, self.duration, self.num_requests, member]
        )
        if allowed:
            return True
        self.retry_in = max(0.0, float(oldest) + self.duration - self.now)
        return False

    def wait(self):
        return self.retry_in


class TokenEndpointThrottle(AtomicRateThrottle):
    """Limits password attempts per client address and, separately, per username (shared via Redis)."""

    scope = "auth"

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
