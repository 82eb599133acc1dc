"""Input checks shared by the API's serializers: things Postgres would otherwise reject with a 500."""

import copy
import json

from rest_framework import serializers

MAX_JSON_DEPTH = 32


def unstorable_text(value):
    """Why Postgres could not store `value`, or None: NUL characters and lone surrogates."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return None


def _walk(value, depth, path):
    if depth > MAX_JSON_DEPTH:
        raise serializers.ValidationError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if problem := unstorable_text(value):
            raise serializers.ValidationError(f"Text {problem} (at {path or 'top level'}).")
    elif isinstance(value, dict):
        for key, item in value.items():
            if problem := unstorable_text(key):
                raise serializers.ValidationError(f"Keys {problem}.")
            _walk(item, depth + 1, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, depth + 1, f"{path}[{index}]")


def check_json(value, *, max_bytes=None):
    """Reject NUL characters (Postgres cannot store them), absurd nesting and oversized documents."""
    _walk(value, 0, "")
    if max_bytes is not None:
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > max_bytes:
            raise serializers.ValidationError(f"is {size} bytes; the limit is {max_bytes} bytes")
    return value


# The two serializer mixins below explain themselves in comments, not docstrings: drf-spectacular describes
# a serializer's schema with the first docstring of its classes, and these would become the API docs'
# description of every request body that uses them.


class PrototypeFieldsMixin:
    # Each serializer instance gets its fields as shallow copies of the declared ones.
    #
    # DRF deep-copies every declared field per instance, which re-runs each field's __init__ (validators,
    # regexes, choices): on task creation and heartbeats that was a tenth of the request's CPU. A shallow
    # copy is a distinct object that the serializer binds to itself as usual; what it shares with the
    # declared field (validators, error messages, choices) DRF never changes after __init__. A list or
    # dict field's child is copied too and bound to the copy, as its __init__ binds it; nested serializers
    # keep DRF's deep copy.

    def get_fields(self):
        return {name: _clone(field) for name, field in self._declared_fields.items()}


def _clone(field):
    if isinstance(field, serializers.BaseSerializer):
        return copy.deepcopy(field)
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    child = getattr(field, "child", None)
    if child is not None:
        clone.child = _clone(child)
        clone.child.parent = clone  # the rest of the binding (name "", source) is the child's already
    return clone


class StrictFieldsMixin:
    # Unknown or read-only fields in a request body are an error, not silently ignored.
    #
    # Mass-assignment attempts (`"status": "completed"`, `"agent_id": ...`) get a 400 naming the field.

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError(
                    {name: ["This field is read-only or unknown."] for name in unknown}
                )
        return super().to_internal_value(data)


class StrictStringMixin:
    """DRF turns 12 into "12"; a typed API should say that a number is not a string.

    Text Postgres cannot store (NUL, lone surrogates) gets one message, the agents app's, before any
    validator runs: DRF's own ProhibitNullCharactersValidator and a pattern's RegexValidator would
    otherwise each add theirs for the same character.
    """

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if problem := unstorable_text(data):
            raise serializers.ValidationError(f"This field {problem}.", code="invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """Integers only: DRF would accept "5", 5.0 and (as a string) other spellings of a number."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false: DRF would also take 1, "yes", "on" and "0"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class NoNulCharField(StrictStringMixin, serializers.CharField):
    """Free text: a string, without NUL characters or lone surrogates (StrictStringMixin)."""


class StrictRegexField(StrictStringMixin, serializers.RegexField):
    pass
