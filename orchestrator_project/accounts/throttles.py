import hashlib
from functools import lru_cache

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from orchestrator_project import ids
from orchestrator_project.redis_client import get_redis

# Sliding windows kept as sorted sets of request times, checked and extended in one script: Redis runs
# it atomically, so concurrent requests in any number of processes cannot both take the last slot. With
# several keys (one client's address and the username it tries) a request is let through only if every
# window has room, and only then recorded in all of them: a request refused by one window must not use
# up a slot of another. Returns {1, 0} when let through, {0, the time the fullest window frees a slot}.
_SLIDING_WINDOWS = """
local now, window, limit, member = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local frees_at = nil
for _, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) >= limit then
        local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
        if frees_at == nil or oldest > frees_at then frees_at = oldest end
    end
end
if frees_at ~= nil then
    return {0, tostring(frees_at)}
end
for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return {1, '0'}
"""


@lru_cache(maxsize=1)
def _sliding_windows():
    return get_redis().register_script(_SLIDING_WINDOWS)


class AtomicRateThrottle(SimpleRateThrottle):
    """DRF's SimpleRateThrottle reads the request history from the cache, decides, then writes it back:
    requests that arrive together all read the same history and all pass. This one decides in Redis."""

    key_prefix = "orchestrator:throttle:"

    def get_rate(self):
        # DRF copies DEFAULT_THROTTLE_RATES onto the class at import time; reading them here instead
        # lets a changed setting (an override in tests, a reloaded config) take effect.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_keys(self, request, view):
        """The windows a request counts against; each must have room. One, unless a subclass says."""
        key = self.get_cache_key(request, view)
        return [] if key is None else [key]

    def allow_request(self, request, view):
        self.retry_in = None
        if self.rate is None:
            return True
        keys = self.get_cache_keys(request, view)
        if not keys:
            return True
        self.now = self.timer()
        member = f"{self.now}:{ids.uuid4().hex}"
        allowed, frees_at = _sliding_windows()(
            keys=[self.key_prefix + key for key in keys],
            args=[self.now, self.duration, self.num_requests, member],
        )
        if allowed:
            return True
        self.retry_in = max(0.0, float(frees_at) + self.duration - self.now)
        return False

    def wait(self):
        return self.retry_in


class TokenEndpointThrottle(AtomicRateThrottle):
    """Limits password attempts per client address and, in the same check, per username: a guesser
    spreading attempts over many addresses still hits the second (shared via Redis)."""

    scope = "auth"

    def get_cache_keys(self, request, view):
        keys = [self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}]
        data = request.data
        # A body that is not an object (a JSON list, say) has no username; the serializer rejects it.
        username = str(data.get("username", ""))[:150].lower() if hasattr(data, "get") else ""
        if username:
            # Hashed: a username is arbitrary text, a cache key should not be (control characters, length).
            ident = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()
            keys.append(self.cache_format % {"scope": f"{self.scope}-user", "ident": ident})
        return keys
