import re

from django.conf import settings
from django.db import models
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orchestrator_project.representation import datetime_text, uuid_text
from orchestrator_project.validation import (
    NoNulCharField,
    PrototypeFieldsMixin,
    StrictBooleanField,
    StrictFieldsMixin,
    StrictIntegerField,
    StrictRegexField,
    check_json,
)

from .engine.strategies import STRATEGIES
from .models import EventKind, Task, TaskEvent, TaskStatus

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$"
NAME_MESSAGE = "Use letters, digits and _ . : / - (starting with a letter or digit)."
# Dispatch claims pending tasks ORDER BY priority, created_at (tasks/engine/claim.py): lowest number first.
PRIORITY_HELP = (
    "1-10, 1 = most urgent, 10 = least urgent (default 5). Of the pending tasks a free agent can take, the "
    "lowest number is dispatched first, then the oldest."
)


def capability_field():
    return StrictRegexField(NAME_PATTERN, max_length=100, error_messages={"invalid": NAME_MESSAGE})


class TaskCreateSerializer(PrototypeFieldsMixin, StrictFieldsMixin, serializers.Serializer):
    type = StrictRegexField(NAME_PATTERN, max_length=100, error_messages={"invalid": NAME_MESSAGE})
    description = NoNulCharField(max_length=10000, required=False, allow_blank=True, default="")
    input_data = serializers.JSONField(required=False, default=dict)
    required_capabilities = serializers.ListField(
        child=capability_field(), min_length=1, max_length=50, required=False
    )
    priority = StrictIntegerField(min_value=1, max_value=10, default=5, help_text=PRIORITY_HELP)
    max_retries = StrictIntegerField(min_value=0, max_value=100, required=False)
    timeout_seconds = StrictIntegerField(min_value=1, max_value=86400, required=False)
    deadline = serializers.DateTimeField(required=False, allow_null=True, default=None)
    auto_dispatch = StrictBooleanField(default=True)
    strategy = serializers.ChoiceField(
        choices=sorted(STRATEGIES), required=False, allow_blank=True, default=""
    )

    def validate_input_data(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return check_json(value, max_bytes=settings.TASK_MAX_INPUT_BYTES)

    def validate_deadline(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value

    def validate(self, attrs):
        attrs.setdefault("required_capabilities", [attrs["type"]])
        attrs["required_capabilities"] = list(dict.fromkeys(attrs["required_capabilities"]))
        attrs.setdefault("max_retries", settings.TASK_MAX_RETRIES)
        attrs.setdefault("timeout_seconds", settings.TASK_DEFAULT_TIMEOUT)
        return attrs


_NAME = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"))
_FAST_KEYS = frozenset({"type", "input_data", "priority"})


def plainly_valid_task(data):
    """validated_data for the commonest creation body, or None to go through TaskCreateSerializer.

    Task creation is the API's busiest write, and most bodies are a type, an input document and maybe
    a priority, plainly valid. Those are checked here directly (the serializer's field machinery
    was a tenth of a creation's CPU); anything else, including every invalid body, takes the
    serializer, so errors are always the serializer's. tests/tasks/test_create_fast_path.py holds the
    two to the same results.
    """
    if type(data) is not dict or not data.keys() <= _FAST_KEYS:
        return None
    task_type = data.get("type")
    if type(task_type) is not str or len(task_type) > 100 or not _NAME.fullmatch(task_type):
        return None
    priority = data.get("priority", 5)
    if type(priority) is not int or not 1 <= priority <= 10:
        return None
    input_data = data.get("input_data", {})
    if type(input_data) is not dict:
        return None
    try:
        input_data = check_json(input_data, max_bytes=settings.TASK_MAX_INPUT_BYTES)
    except serializers.ValidationError:
        return None
    return {
        "type": task_type,
        "description": "",
        "input_data": input_data,
        "required_capabilities": [task_type],
        "priority": priority,
        "max_retries": settings.TASK_MAX_RETRIES,
        "timeout_seconds": settings.TASK_DEFAULT_TIMEOUT,
        "deadline": None,
        "auto_dispatch": True,
        "strategy": "",
    }


class TaskBulkCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    tasks = TaskCreateSerializer(many=True, allow_empty=False)

    def validate_tasks(self, value):
        if len(value) > settings.TASK_BULK_MAX:
            raise serializers.ValidationError(f"At most {settings.TASK_BULK_MAX} tasks per request.")
        return value


# How each output field is read off a Task, for the hand-written to_representation below.
_OUTPUT = {
    "task_id": ("task_id", uuid_text),
    "agent_id": ("assigned_agent_id", uuid_text),
    "required_capabilities": ("required_capabilities", list),
    **{
        field.name: (field.name, datetime_text)
        for field in Task._meta.concrete_fields
        if isinstance(field, models.DateTimeField)
    },
}


# TaskSerializer is the lean representation used by create and list: no events, no joins.
#
# The declared fields document the schema and stay the reference; `to_representation` produces the
# same JSON directly from the row, because DRF's generic path (building and binding two dozen field
# objects per serializer) cost more than the INSERT on every task created or listed.
# tests/tasks/test_serializers.py checks that both agree. (A comment, not the docstring: drf-spectacular
# shows a serializer's docstring in the API docs.)


class TaskSerializer(serializers.ModelSerializer):
    """A task: what it asks for, its status and agent, its result or error, and its timing."""

    agent_id = serializers.UUIDField(source="assigned_agent_id", read_only=True, allow_null=True)
    input_data = serializers.JSONField()
    result = serializers.JSONField()
    error = serializers.JSONField()
    failover_until = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="After an agent refused the task (503, 429, no connection): until then it goes only to"
        " agents it has not tried (prompt failover, TASK_FAILOVER_ATTEMPTS); null otherwise.",
    )

    class Meta:
        model = Task
        extra_kwargs = {"priority": {"help_text": PRIORITY_HELP}}
        fields = [
            "task_id",
            "type",
            "description",
            "input_data",
            "required_capabilities",
            "priority",
            "status",
            "agent_id",
            "result",
            "error",
            "attempts",
            "max_retries",
            "timeout_seconds",
            "deadline",
            "auto_dispatch",
            "strategy",
            "idempotency_key",
            "created_at",
            "assigned_at",
            "started_at",
            "finished_at",
            "updated_at",
            "next_attempt_at",
            "failover_until",
            "lease_expires_at",
        ]
        read_only_fields = fields

    def to_representation(self, task):
        data = {}
        for name in getattr(self.Meta, "row_fields", self.Meta.fields):
            attribute, convert = _OUTPUT.get(name, (name, None))
            value = getattr(task, attribute)
            data[name] = convert(value) if convert is not None else value
        return data


class WarningSerializer(serializers.Serializer):
    """Something the request did that will not fail it, but may not do what was meant."""

    field = serializers.CharField()
    message = serializers.CharField()


class TaskCreatedSerializer(TaskSerializer):
    """A created task, with warnings (a capability no registered agent offers: it waits for one)."""

    warnings = WarningSerializer(many=True, read_only=True)

    class Meta(TaskSerializer.Meta):
        row_fields = TaskSerializer.Meta.fields  # the task's own; the view adds the warnings
        fields = [*TaskSerializer.Meta.fields, "warnings"]
        read_only_fields = fields


class TaskListSerializer(TaskSerializer):
    """Lists leave out the potentially large input and result documents."""

    class Meta(TaskSerializer.Meta):
        fields = [f for f in TaskSerializer.Meta.fields if f not in ("input_data", "result")]
        read_only_fields = fields


class TaskEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskEvent
        fields = ["kind", "status", "attempt", "agent_id", "reason", "details", "created_at"]
        read_only_fields = fields


class TaskAttemptSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    agent_id = serializers.UUIDField(allow_null=True)
    assigned_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


# An attempt ends with the first of these events carrying its number.
_ENDING_KINDS = {
    EventKind.COMPLETED,
    EventKind.FAILED,
    EventKind.RETRYING,
    EventKind.REASSIGNED,
    EventKind.CANCELLED,
}


def attempts_from_events(events):
    attempts = {}
    for event in events:
        if event.attempt == 0:
            continue
        entry = attempts.setdefault(
            event.attempt,
            {
                "attempt": event.attempt,
                "agent_id": event.agent_id,
                "assigned_at": None,
                "ended_at": None,
                "outcome": None,
                "reason": "",
            },
        )
        if event.kind == EventKind.ASSIGNED:
            entry["assigned_at"], entry["agent_id"] = event.created_at, event.agent_id
        elif event.kind in _ENDING_KINDS and entry["outcome"] is None:
            entry.update(ended_at=event.created_at, outcome=event.kind, reason=event.reason)
    return [attempts[number] for number in sorted(attempts)]


class TaskDetailSerializer(TaskSerializer):
    """A task with its history: every event, and each attempt's agent, timing and outcome."""

    events = serializers.SerializerMethodField()
    attempt_history = serializers.SerializerMethodField()

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "events", "attempt_history"]
        read_only_fields = fields
        row_fields = TaskSerializer.Meta.fields  # the rest come from the get_* methods

    def to_representation(self, task):
        data = super().to_representation(task)
        data["events"] = self.get_events(task)
        data["attempt_history"] = self.get_attempt_history(task)
        return data

    def _events(self, task):
        if not hasattr(task, "_event_list"):
            task._event_list = list(task.events.order_by("created_at", "id"))
        return task._event_list

    @extend_schema_field(TaskEventSerializer(many=True))
    def get_events(self, task):
        return TaskEventSerializer(self._events(task), many=True).data

    @extend_schema_field(TaskAttemptSerializer(many=True))
    def get_attempt_history(self, task):
        return TaskAttemptSerializer(attempts_from_events(self._events(task)), many=True).data


class AssignSerializer(StrictFieldsMixin, serializers.Serializer):
    agent_id = serializers.UUIDField(required=False, allow_null=True, default=None)


class ResultReportSerializer(StrictFieldsMixin, serializers.Serializer):
    status = serializers.ChoiceField(choices=[TaskStatus.COMPLETED, TaskStatus.FAILED])
    result = serializers.JSONField(required=False, allow_null=True, default=None)
    error = serializers.JSONField(required=False, allow_null=True, default=None)
    retryable = StrictBooleanField(default=False, help_text="For failures: may another attempt succeed?")

    def validate_result(self, value):
        return check_json(value, max_bytes=settings.AGENT_RESPONSE_MAX_BYTES)

    def validate_error(self, value):
        return check_json(value, max_bytes=64 * 1024)


class ExecuteResponseSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    status = serializers.CharField()
    result = serializers.JSONField(allow_null=True)
    agent_id = serializers.UUIDField(allow_null=True)
    error = serializers.JSONField(required=False, allow_null=True)


class BulkCreateResponseSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    task_ids = serializers.ListField(child=serializers.UUIDField())
    warnings = WarningSerializer(
        many=True, help_text="Capabilities no registered agent offers (`tasks[i].required_capabilities`)."
    )
