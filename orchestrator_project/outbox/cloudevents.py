"""An outbox row as a CloudEvents 1.0 event: the attributes every sink sends (docs/events.md).

Kafka carries them in binary mode (a `ce_` header per attribute, the payload as the message value);
a Redis Stream entry carries the same names as fields beside `data`.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from django.conf import settings

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Event:
    """One outbox row, as the relay read it."""

    position: int
    event_id: UUID
    aggregatetype: str
    aggregateid: UUID
    type: str
    payload: str  # JSON text
    sequence: int
    created_at: datetime

    @property
    def key(self):
        """The entity's id: one Kafka partition, so one order, per entity."""
        return str(self.aggregateid)

    @property
    def topic(self):
        return settings.EVENT_TOPICS[self.aggregatetype]

    def attributes(self):
        return {
            "ce_specversion": SPEC_VERSION,
            "ce_id": str(self.event_id),
            "ce_source": settings.EVENT_SOURCE,
            "ce_type": self.type,
            "ce_subject": f"{self.aggregatetype}/{self.aggregateid}",
            "ce_time": self.created_at.astimezone(UTC).isoformat(),
            # The CloudEvents sequence extension: the entity's own counter, as a decimal string.
            "ce_sequence": str(self.sequence),
            "content-type": CONTENT_TYPE,
        }

    def data(self):
        return self.payload.encode()
