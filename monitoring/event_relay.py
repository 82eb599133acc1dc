"""The event relay as monitoring sees it: lag and leader from the outbox (true whatever process runs the
relay), counters from the relay's own stats in Redis. Feeds /metrics, /health/detailed, /status and the
dashboard, so they all say the same."""

from django.conf import settings

from orchestrator_project.outbox import stats
from orchestrator_project.outbox.lag import relay_lag


def relay_state():
    """{state: ok | lagging | off, sink, leader, unpublished, lag_seconds, oldest_unpublished_at}.

    Lagging once the oldest unpublished event is older than EVENT_RELAY_LAG_DEGRADED_SECONDS: a relay
    that is stopped, crashed or cannot reach its broker shows up as lag, whatever the cause.
    """
    if settings.EVENT_SINK == "none":
        return {"state": "off", "sink": "none"}
    lag = relay_lag()
    lagging = lag["lag_seconds"] > settings.EVENT_RELAY_LAG_DEGRADED_SECONDS
    oldest = lag["oldest_unpublished_at"]
    return {
        "state": "lagging" if lagging else "ok",
        "sink": settings.EVENT_SINK,
        "leader": lag["leader"],
        "unpublished": lag["unpublished"],
        "lag_seconds": round(lag["lag_seconds"], 3),
        "oldest_unpublished_at": oldest.isoformat() if oldest else None,
    }


def relay_counters():
    """Events published, replayed, and failed attempts, since the counters began (Redis)."""
    return stats.read()
