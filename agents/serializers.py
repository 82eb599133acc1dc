"""Agent API payloads. Registration is strict: every field is type-checked and bounded, because what is
stored here is later sent to Postgres (which refuses NUL characters) and to the agents themselves."""

import json
import re
from urllib.parse import urlsplit, urlunsplit

from rest_framework import serializers

from orchestrator_project import egress
from orchestrator_project.validation import PrototypeFieldsMixin, unstorable_text

from .discovery import CAPABILITY_PATTERN, MAX_CAPABILITIES
from .models import Agent, AgentStatus

TYPE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MAX_JSON_DEPTH = 10
MAX_METADATA_BYTES = 64 * 1024
MAX_METRICS_BYTES = 16 * 1024
MAX_CONCURRENCY = 10_000
MAX_WEIGHT = 1_000
MAX_HEARTBEAT_TIMEOUT = 3_600
MAX_REPORTED_LOAD = 1_000_000


def check_json_object(value, *, max_bytes, what):
    """A JSON object that is shallow, small, and holds only text Postgres can store."""
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"{what} must be a JSON object.")
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise serializers.ValidationError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.")
        if isinstance(item, dict):
            for key, child in item.items():
                if unstorable_text(key):
                    raise serializers.ValidationError(f"{what} keys {unstorable_text(key)}.")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and unstorable_text(item):
            raise serializers.ValidationError(f"{what} strings {unstorable_text(item)}.")
    if len(json.dumps(value).encode()) > max_bytes:
        raise serializers.ValidationError(f"{what} must be at most {max_bytes} bytes of JSON.")
    return value


class StrictCharField(serializers.CharField):
    """Text only: DRF would turn 42 or true into "42" or "True"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        problem = unstorable_text(data)
        if problem:
            raise serializers.ValidationError(f"This field {problem}.")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """Integers only: DRF would accept "5", 5.0 and true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CapabilityField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=100, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not CAPABILITY_PATTERN.match(value):
            raise serializers.ValidationError(
                "Capabilities start with a letter or digit and contain only letters, digits and _ . : / -."
            )
        return value


class AgentSerializer(serializers.ModelSerializer):
    """How an agent is shown. Credentials are never part of it."""

    class Meta:
        model = Agent
        fields = [
            "agent_id",
            "type",
            "name",
            "endpoint",
            "capabilities",
            "metadata",
            "status",
            "drained_by_operator",
            "last_heartbeat",
            "heartbeat_timeout",
            "heartbeat_expires_at",
            "max_concurrency",
            "current_load",
            "reported_load",
            "weight",
            "circuit_state",
            "consecutive_failures",
            "success_count",
            "failure_count",
            "avg_latency_ms",
            "success_rate",
            "probe_failures",
            "last_probe_at",
            "probe_heartbeats",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class RegisteredAgentSerializer(AgentSerializer):
    """The registration answer: the agent plus its credentials, shown this once."""

    token = serializers.CharField(read_only=True)
    signing_secret = serializers.CharField(read_only=True)

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "token", "signing_secret"]
        read_only_fields = fields


class AgentRegistrationSerializer(serializers.Serializer):
    type = StrictCharField(max_length=100)
    name = StrictCharField(max_length=200)
    endpoint = StrictCharField(max_length=2000, trim_whitespace=False)
    capabilities = serializers.ListField(
        child=CapabilityField(), required=False, allow_empty=False, max_length=MAX_CAPABILITIES
    )
    metadata = serializers.JSONField(required=False)
    max_concurrency = StrictIntegerField(required=False, min_value=1, max_value=MAX_CONCURRENCY)
    weight = StrictIntegerField(required=False, min_value=1, max_value=MAX_WEIGHT)
    heartbeat_timeout = StrictIntegerField(required=False, min_value=1, max_value=MAX_HEARTBEAT_TIMEOUT)

    def to_internal_value(self, data):
        # Unknown and read-only fields are refused rather than ignored: a typo such as "capabilites"
        # would otherwise silently trigger discovery, and "status" would look as if it had been set.
        if isinstance(data, dict):
            extra = sorted(str(key) for key in data if key not in self.fields)
            if extra:
                raise serializers.ValidationError(
                    {
                        key: [
                            "This field cannot be set."
                            if key in AgentSerializer.Meta.fields
                            else "Unknown field."
                        ]
                        for key in extra
                    }
                )
        return super().to_internal_value(data)

    def validate_type(self, value):
        if not TYPE_PATTERN.match(value):
            raise serializers.ValidationError(
                "A type starts with a letter or digit and contains only letters, digits and _ . : -."
            )
        return value

    def validate_name(self, value):
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise serializers.ValidationError("A name must not contain control characters.")
        return value

    def validate_endpoint(self, value):
        if value != value.strip() or any(char.isspace() for char in value):
            raise serializers.ValidationError("An endpoint must not contain whitespace.")
        try:
            parts = urlsplit(value)
            egress.validate_endpoint(value)
        except egress.EgressRefused as exc:
            raise serializers.ValidationError(f"This endpoint is not allowed: {exc}.")
        except ValueError:
            raise serializers.ValidationError("This is not a valid URL.")
        if parts.query or parts.fragment:
            raise serializers.ValidationError("An endpoint is a base URL, without query or fragment.")
        # One agent per base URL: "http://A:1/x/" and "HTTP://a:1/x" are the same agent.
        normalized = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))
        return normalized

    def validate_capabilities(self, value):
        return list(dict.fromkeys(value))

    def validate_metadata(self, value):
        return check_json_object(value, max_bytes=MAX_METADATA_BYTES, what="metadata")


# What an agent may say of itself in a heartbeat.
HEARTBEAT_STATUSES = (AgentStatus.ONLINE, AgentStatus.DRAINING)


class HeartbeatSerializer(PrototypeFieldsMixin, serializers.Serializer):
    """Anything else an agent sends (a timestamp, say) is ignored: the server's clock decides."""

    status = serializers.ChoiceField(choices=HEARTBEAT_STATUSES, required=False)
    current_load = StrictIntegerField(required=False, min_value=0, max_value=MAX_REPORTED_LOAD)
    metrics = serializers.JSONField(required=False)

    def validate_metrics(self, value):
        return check_json_object(value, max_bytes=MAX_METRICS_BYTES, what="metrics")


def plainly_valid_heartbeat(data):
    """validated_data for the commonest heartbeat bodies (nothing, a status, a load), or None to go
    through HeartbeatSerializer, which then also gives every error. Same results as the serializer's
    (tests/agents/test_heartbeat_fast_path.py); heartbeats are the busiest request of all."""
    if type(data) is not dict or not data.keys() <= {"status", "current_load"}:
        return None
    validated = {}
    if "status" in data:
        if type(data["status"]) is not str or data["status"] not in HEARTBEAT_STATUSES:
            return None
        validated["status"] = data["status"]
    if "current_load" in data:
        load = data["current_load"]
        if type(load) is not int or not 0 <= load <= MAX_REPORTED_LOAD:
            return None
        validated["current_load"] = load
    return validated


class HeartbeatResponseSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=AgentStatus.choices)
    next_heartbeat_before = serializers.DateTimeField()
    heartbeat_timeout = serializers.IntegerField()


class CapabilitySerializer(serializers.Serializer):
    capability = serializers.CharField()
    online_agents = serializers.IntegerField()
    total_agents = serializers.IntegerField()


class CapabilityListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = CapabilitySerializer(many=True)
