"""The heartbeat rate limit (`HEARTBEAT_RATE`, DRF's "N/period" syntax), kept inside the heartbeat itself.

GCRA ("generic cell rate algorithm"): each agent's row holds a theoretical arrival time. A heartbeat is
let through while that time is at most one window (the period less one interval) ahead of now, and
moves it on by one interval (period / N). So an idle agent may send N at once, and no stretch of one
period ever holds more than N. The check and the move are conditions of the heartbeat's own UPDATE:
no extra round trip (a Redis sliding window cost a tenth of a heartbeat), one budget per agent across
every web process, and the row lock makes concurrent heartbeats take turns, so exactly N get through.
"""

from orchestrator_project.accounts.throttles import AtomicRateThrottle

from .changes import CLOCK

# In the statement's WHERE (on the agents table) and SET (agent aliased `a`), see changes.apply.
ALLOWED = f"(heartbeat_tat IS NULL OR heartbeat_tat <= {CLOCK} + make_interval(secs => %(pace_window)s))"
ADVANCE = f"heartbeat_tat = GREATEST(a.heartbeat_tat, {CLOCK}) + make_interval(secs => %(pace_interval)s)"
# Seconds until the agent's next heartbeat would be let through; no row if there is no such agent.
WAIT = """SELECT COALESCE(EXTRACT(EPOCH FROM heartbeat_tat - statement_timestamp()), 0) - %(pace_window)s
          FROM agents_agent WHERE agent_id = %(agent)s"""


class _HeartbeatRate(AtomicRateThrottle):
    """HEARTBEAT_RATE as DRF's throttles read it (parsed by DRF, read per call); never asked to allow a
    request itself."""

    scope = "heartbeat"


def heartbeat_pace():
    """{"pace_interval": seconds, "pace_window": seconds} for the configured rate, or None if unlimited.

    Read per call, like DRF's throttles, so a changed setting (a test's override) takes effect."""
    rate = _HeartbeatRate()
    if rate.rate is None:
        return None
    interval = rate.duration / rate.num_requests
    return {"pace_interval": interval, "pace_window": rate.duration - interval}
