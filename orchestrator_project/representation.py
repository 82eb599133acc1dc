"""Field values as DRF's fields write them, without building the fields.

The busiest responses (a task created or listed, a workflow run started) write their JSON straight
from the row: DRF's generic path builds and binds a field object per field and per serializer, which
cost more than the statement that made the row. These are the conversions those fields would apply;
each serializer that uses them has a test holding it to DRF's own output.
"""

from django.utils import timezone
from rest_framework import serializers

_DATETIME = serializers.DateTimeField()


def uuid_text(value):
    return None if value is None else str(value)


def datetime_text(value):
    """What DRF's DateTimeField writes (ISO 8601 in the current time zone, UTC as "Z"), without its
    per-call settings lookups; a naive value (never stored here) goes the field's own way."""
    if value is None:
        return None
    if value.tzinfo is None:
        return _DATETIME.to_representation(value)
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
