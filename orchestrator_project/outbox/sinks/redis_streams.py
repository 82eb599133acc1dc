"""The default sink: one Redis Stream per entity type, so `make run` streams with no Kafka at all.

Each event is one entry (XADD) of the stream named like its Kafka topic, with the CloudEvents attributes
as fields and the payload in `data`. Consumer groups work as with any stream (docs/events.md). Streams are
capped near EVENT_STREAM_MAXLEN entries (MAXLEN ~, which trims whole nodes cheaply); the outbox keeps
the full history for replay.
"""

import redis
from django.conf import settings
from redis.exceptions import RedisError

from .base import SinkUnavailable


class RedisStreamSink:
    def __init__(self, url=None):
        self.client = redis.Redis.from_url(
            url or settings.EVENT_REDIS_URL or settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2
        )

    def publish(self, events):
        # One round trip for the batch, in order. Not MULTI: a failure half-way leaves the first entries
        # written, and those are then sent again (at least once; consumers dedupe on ce_id).
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(
                event.topic,
                {**event.attributes(), "key": event.key, "data": event.data()},
                maxlen=settings.EVENT_STREAM_MAXLEN,
                approximate=True,
            )
        try:
            results = pipe.execute(raise_on_error=False)
        except RedisError as exc:
            raise SinkUnavailable(f"redis: {exc}") from exc
        acknowledged = set()
        for event, result in zip(events, results, strict=True):
            if isinstance(result, Exception):
                break  # keep the order: what follows a failed entry goes again with it
            acknowledged.add(event.position)
        if not acknowledged:
            raise SinkUnavailable(f"redis: {results[0]}")
        return acknowledged

    def close(self):
        self.client.close()
