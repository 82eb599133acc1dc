"""Serializers that clone their fields shallowly (PrototypeFieldsMixin) must validate exactly as DRF's
deep copies do, and must never share a bound field between two instances."""

import pytest
from rest_framework import serializers

from agents.serializers import HeartbeatSerializer
from tasks.serializers import TaskCreateSerializer

BODIES = {
    TaskCreateSerializer: [
        {"type": "summarize"},
        {
            "type": "summarize",
            "input_data": {"k": [1, 2]},
            "priority": 10,
            "required_capabilities": ["a", "a"],
        },
        {"type": "bad type!", "priority": 0, "required_capabilities": ["ok", "not ok!", 5]},
        {"type": "t", "required_capabilities": []},
        {"type": "t", "required_capabilities": "one"},
        {"type": "t", "priority": "5", "auto_dispatch": "yes", "strategy": "nope", "input_data": []},
        {"type": "t", "deadline": "2000-01-01T00:00:00Z", "max_retries": 1000},
        {"type": "t", "description": "a\x00b", "input_data": {"x": "\x00"}, "status": "completed"},
        {},
    ],
    HeartbeatSerializer: [
        {},
        {"status": "online", "current_load": 3, "metrics": {"cpu": 0.5}},
        {"status": "offline", "current_load": -1, "metrics": []},
        {"current_load": "3"},
    ],
}


def _with_drf_copies(serializer_class):
    class DeepCopied(serializer_class):
        def get_fields(self):
            return serializers.Serializer.get_fields(self)

    return DeepCopied


def _outcome(serializer):
    if serializer.is_valid():
        return "valid", dict(serializer.validated_data)
    return "invalid", serializer.errors


@pytest.mark.parametrize(
    "serializer_class, body", [(cls, body) for cls, bodies in BODIES.items() for body in bodies]
)
def test_validation_is_the_same_as_with_drfs_deep_copies(serializer_class, body):
    expected = _outcome(_with_drf_copies(serializer_class)(data=body))

    assert _outcome(serializer_class(data=body)) == expected
    # Twice: the first instance must not have changed anything the next one clones.
    assert _outcome(serializer_class(data=body)) == expected


def test_each_instance_binds_fields_of_its_own():
    first, second = TaskCreateSerializer(data={}), TaskCreateSerializer(data={})

    for name, field in first.fields.items():
        other = second.fields[name]
        assert field is not other
        assert field.parent is first and other.parent is second
        assert field is not TaskCreateSerializer._declared_fields[name]
    capabilities = first.fields["required_capabilities"]
    assert capabilities.child is not second.fields["required_capabilities"].child
    assert capabilities.child.parent is capabilities


def test_the_bulk_serializer_validates_each_item_with_cloned_fields():
    from tasks.serializers import TaskBulkCreateSerializer

    bulk = TaskBulkCreateSerializer(data={"tasks": [{"type": "a"}, {"type": "b!"}, {"type": "c"}]})

    assert not bulk.is_valid()
    assert list(bulk.errors["tasks"]) == [1]
    assert set(bulk.errors["tasks"][1]) == {"type"}
    valid = TaskBulkCreateSerializer(data={"tasks": [{"type": "a"}, {"type": "b", "priority": 2}]})
    assert valid.is_valid()
    items = valid.validated_data["tasks"]
    assert [(t["type"], t["priority"], t["required_capabilities"]) for t in items] == [
        ("a", 5, ["a"]),
        ("b", 2, ["b"]),
    ]
