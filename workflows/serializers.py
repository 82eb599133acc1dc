from django.conf import settings
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
from tasks.serializers import PRIORITY_HELP, WarningSerializer

from .items import summaries as map_item_summaries
from .models import (
    WHOLE_STEP,
    RunStatus,
    StepKind,
    StepRun,
    StepStatus,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowRun,
)

WORKFLOW_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
RESERVED_NAMES = {"validate"}  # a path of its own under /api/v1/workflows


class DefinitionCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    name = StrictRegexField(
        WORKFLOW_NAME,
        max_length=100,
        error_messages={"invalid": "Use letters, digits and _ . - (starting with a letter or digit)."},
    )
    # No default: left out, an existing version's description is not "changed to empty" (definitions.py).
    description = NoNulCharField(max_length=2000, required=False, allow_blank=True)
    spec = serializers.JSONField(help_text="The steps, defaults and output (docs/workflows.md).")

    def validate_name(self, value):
        if value in RESERVED_NAMES:
            raise serializers.ValidationError(f"{value!r} is reserved.")
        return value


class ValidateSerializer(StrictFieldsMixin, serializers.Serializer):
    spec = serializers.JSONField()


class ValidateResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    spec = serializers.JSONField(help_text="The spec with every default filled in, as it would be stored.")
    spec_sha256 = serializers.CharField()
    warnings = WarningSerializer(many=True)


class DefinitionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = WorkflowDefinition
        fields = [
            "definition_id",
            "name",
            "version",
            "description",
            "spec_sha256",
            "spec",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class DefinitionListSerializer(DefinitionSerializer):
    class Meta(DefinitionSerializer.Meta):
        fields = [f for f in DefinitionSerializer.Meta.fields if f != "spec"]
        read_only_fields = fields


class DefinitionCreatedSerializer(DefinitionSerializer):
    warnings = WarningSerializer(many=True, read_only=True)

    class Meta(DefinitionSerializer.Meta):
        fields = [*DefinitionSerializer.Meta.fields, "warnings"]
        read_only_fields = fields


class RunCreateSerializer(PrototypeFieldsMixin, StrictFieldsMixin, serializers.Serializer):
    workflow = StrictRegexField(WORKFLOW_NAME, max_length=100)
    version = StrictIntegerField(
        min_value=1, required=False, allow_null=True, default=None, help_text="Default: the latest."
    )
    input = serializers.JSONField(required=False, default=dict)
    priority = StrictIntegerField(min_value=1, max_value=10, default=5, help_text=PRIORITY_HELP)

    def validate_input(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return check_json(value, max_bytes=settings.WORKFLOW_RUN_INPUT_MAX_BYTES)


class StepRunSerializer(serializers.ModelSerializer):
    """A step run as the API shows it: a map item as it is, and the base of a whole step's view."""

    map_index = serializers.SerializerMethodField()
    agent_id = serializers.SerializerMethodField()
    task_attempts = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=StepStatus.choices)

    class Meta:
        model = StepRun
        fields = [
            "step_id",
            "map_index",
            "kind",
            "status",
            "attempt",
            "task_id",
            "task_attempts",
            "agent_id",
            "input",
            "output",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_map_index(self, step) -> int | None:
        return None if step.map_index < 0 else step.map_index

    def get_agent_id(self, step) -> str | None:
        task = step.task
        return str(task.assigned_agent_id) if task is not None and task.assigned_agent_id else None

    def get_task_attempts(self, step) -> int | None:
        return step.task.attempts if step.task is not None else None


class MapItemsSummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(
        child=serializers.IntegerField(), help_text="Items per status; statuses no item has are left out."
    )


class StepSerializer(StepRunSerializer):
    """A step of the run, with a map step's items counted by status (the step's items endpoint lists
    them)."""

    # The counts come from context["items"] (what items.summaries returned for the whole run).

    items = serializers.SerializerMethodField()

    class Meta(StepRunSerializer.Meta):
        fields = [
            *StepRunSerializer.Meta.fields,
            "items_total",
            "remaining_items",
            "items",
            "due_at",
            "decided_by",
        ]
        read_only_fields = fields

    @extend_schema_field(MapItemsSummarySerializer(allow_null=True))
    def get_items(self, step):
        if step.kind != StepKind.MAP:
            return None
        return self.context["items"].get(step.step_id, {"total": 0, "by_status": {}})


class RunEventSerializer(serializers.ModelSerializer):
    # null, as in the steps and on the event stream: the table's "" (the run itself) and -1 (a whole
    # step) are how it stores "none".
    step_id = serializers.SerializerMethodField()
    map_index = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowEvent
        fields = ["step_id", "map_index", "status", "attempt", "reason", "created_at"]
        read_only_fields = fields

    def get_step_id(self, event) -> str | None:
        return event.step_id or None

    def get_map_index(self, event) -> int | None:
        return None if event.map_index == WHOLE_STEP else event.map_index


class RunSerializer(serializers.ModelSerializer):
    workflow = serializers.CharField(source="definition.name", read_only=True)
    version = serializers.IntegerField(source="definition.version", read_only=True)
    status = serializers.ChoiceField(choices=RunStatus.choices, read_only=True)
    parent_run_id = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowRun
        fields = [
            "run_id",
            "workflow",
            "version",
            "status",
            "priority",
            "input",
            "output",
            "error",
            "parent_run_id",
            "created_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_parent_run_id(self, run) -> str | None:
        return _RUN_OUTPUT["parent_run_id"](run)

    def to_representation(self, run):
        """The declared fields' JSON, written straight from the row: a run's start returns it, and
        DRF's generic path (a dozen field objects built per response) cost the start a tenth of its
        CPU. tests/workflows/test_serializers.py holds it to DRF's own output."""
        data = {}
        for name in self.Meta.fields:
            read = _RUN_OUTPUT.get(name) or getattr(self, f"get_{name}", None)  # a detail's steps, say
            data[name] = read(run) if read is not None else getattr(run, name)
        return data


# How each of RunSerializer's fields is read off a run; the rest are the run's attribute as it is.
_RUN_OUTPUT = {
    "run_id": lambda run: uuid_text(run.run_id),
    "workflow": lambda run: run.definition.name,
    "version": lambda run: run.definition.version,
    "parent_run_id": lambda run: str(run.parent_step.run_id) if run.parent_step_id else None,
    "created_at": lambda run: datetime_text(run.created_at),
    "updated_at": lambda run: datetime_text(run.updated_at),
    "finished_at": lambda run: datetime_text(run.finished_at),
}


class RunListSerializer(RunSerializer):
    class Meta(RunSerializer.Meta):
        fields = [f for f in RunSerializer.Meta.fields if f not in ("input", "output")]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    steps = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps", "events"]
        read_only_fields = fields

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, run):
        # The whole steps only: a map's items (up to 10,000 each) are counted, not listed.
        steps = run.steps.filter(map_index=WHOLE_STEP).select_related("task").order_by("id")
        return StepSerializer(steps, many=True, context={"items": map_item_summaries(run_id=run.run_id)}).data

    @extend_schema_field(RunEventSerializer(many=True))
    def get_events(self, run):
        return RunEventSerializer(run.events.order_by("-id")[:200], many=True).data


class RetryStepSerializer(StrictFieldsMixin, serializers.Serializer):
    map_index = StrictIntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        default=None,
        help_text="Retry only this failed item of a map step (default: the whole step).",
    )
    failed_items = StrictBooleanField(
        required=False,
        default=False,
        help_text="Retry every failed or cancelled item of a map step, and only those.",
    )


class DecisionSerializer(StrictFieldsMixin, serializers.Serializer):
    comment = NoNulCharField(max_length=2000, required=False, allow_blank=True, default="")
