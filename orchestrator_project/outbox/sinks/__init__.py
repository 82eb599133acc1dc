"""Where the relay publishes: a small registry of sinks, each a class with one method.

`publish(events)` sends the events in the order given and returns the positions the broker
acknowledged; it raises SinkUnavailable when it could deliver none (the relay then backs off and tries
again). `close()` lets go of the connection. Adding a sink is adding a class to SINKS.
"""

from django.conf import settings

from .base import SinkUnavailable
from .kafka import KafkaSink
from .redis_streams import RedisStreamSink

SINKS = {"redis": RedisStreamSink, "kafka": KafkaSink}

__all__ = ["SINKS", "SinkUnavailable", "build"]


def build(name=None):
    """The configured sink (EVENT_SINK); with `none` there is nothing to relay."""
    name = name or settings.EVENT_SINK
    if name not in SINKS:
        raise ValueError(f"EVENT_SINK={name}: no events are written, so there is nothing to relay")
    return SINKS[name]()
