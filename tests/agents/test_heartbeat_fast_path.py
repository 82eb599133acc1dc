"""plainly_valid_heartbeat must agree with HeartbeatSerializer where it answers, and leave everything
else (every invalid body included) to it."""

import pytest

from agents.serializers import MAX_REPORTED_LOAD, HeartbeatSerializer, plainly_valid_heartbeat

PLAIN = [
    {},
    {"status": "online"},
    {"status": "draining", "current_load": 3},
    {"current_load": 0},
    {"current_load": MAX_REPORTED_LOAD},
]
NOT_PLAIN = [
    {"status": "offline"},
    {"status": "ONLINE"},
    {"status": None},
    {"status": 1},
    {"current_load": -1},
    {"current_load": MAX_REPORTED_LOAD + 1},
    {"current_load": True},
    {"current_load": 2.0},
    {"current_load": "2"},
    {"metrics": {"cpu": 0.5}},
    {"timestamp": "2026-11-24T00:00:00Z"},
    [],
    None,
]


def _serializer(body):
    serializer = HeartbeatSerializer(data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@pytest.mark.parametrize("body", PLAIN)
def test_plain_heartbeats_get_what_the_serializer_gives(body):
    fast = plainly_valid_heartbeat(body)
    assert fast is not None
    assert fast == _serializer(body)


@pytest.mark.parametrize("body", NOT_PLAIN)
def test_anything_else_is_left_to_the_serializer(body):
    assert plainly_valid_heartbeat(body) is None
