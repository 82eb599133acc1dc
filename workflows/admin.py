"""Workflows in the admin: definitions (read-only, the spec pretty-printed, every version of the name),
runs with their step graph and step rows, and the operators' verbs: cancel, pause and resume a run;
retry a run from a failed step, approve or reject an approval step (on the step's own page, reached
from the graph). Every verb goes through runs.py, as the API does; viewers see the same pages without
the verbs (admin_verbs.py: a verb needs the `change` permission, which only operators have).
"""

import json
from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from orchestrator_project.admin_verbs import Report, Verb, VerbsMixin
from orchestrator_project.errors import Conflict, DomainError
from tasks.admin import agent_link

from . import items, runs, step_graph
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


def _pretty(value):
    return format_html(
        "<pre style='white-space: pre-wrap; max-height: 30em; overflow: auto'>{}</pre>",
        json.dumps(value, indent=2, ensure_ascii=False, default=str),
    )


def _coloured(status):
    # A line may break after an underscore: "awaiting_approval" is the widest word of a step row, which
    # must fit a narrow page (static/orchestrator/admin.css).
    return format_html(
        '<b style="color:{}">{}</b>',
        step_graph.STATUS_COLOURS.get(status, "#000"),
        format_html_join(mark_safe("_<wbr>"), "{}", ((part,) for part in status.split("_"))),
    )


class ShownMixin:
    """A run's or a step's status in colour, and its input, output and error pretty-printed."""

    RESULT_FIELDS = ["pretty_input", "pretty_output", "pretty_error"]

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj):
        return _coloured(obj.status)

    @admin.display(description="input")
    def pretty_input(self, obj):
        return _pretty(obj.input)

    @admin.display(description="output")
    def pretty_output(self, obj):
        return _pretty(obj.output)

    @admin.display(description="error")
    def pretty_error(self, obj):
        return _pretty(obj.error)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nothing here is edited in a form: runs and steps change only through their verbs."""

    class Media:
        # The step graph's and the uncaptioned step rows' styles, and the graph's step labels'.
        css = {"all": ["orchestrator/admin.css", "orchestrator/step_label.css"]}

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The `change` permission is what a verb needs; the change page itself stays read-only.
        if obj is not None and request.method == "POST":
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "step_count", "spec_sha256", "created_by", "created_at"]
    list_filter = ["name"]
    search_fields = ["name"]
    fields = [
        "name",
        "version",
        "description",
        "spec_sha256",
        "created_at",
        "graph",
        "versions",
        "pretty_spec",
    ]
    readonly_fields = fields

    @admin.display(description="steps")
    def step_count(self, definition):
        return len(definition.spec.get("steps", []))

    @admin.display(description="spec")
    def pretty_spec(self, definition):
        return _pretty(definition.spec)

    @admin.display(description="step graph")
    def graph(self, definition):
        return step_graph.render(definition.spec.get("steps", []), {})

    @admin.display(description="versions")
    def versions(self, definition):
        others = WorkflowDefinition.objects.filter(name=definition.name).order_by("-version")
        return format_html_join(
            " ",
            '<a href="{}">v{}</a>',
            (
                (reverse("admin:workflows_workflowdefinition_change", args=[d.pk]), d.version)
                for d in others.only("definition_id", "version")
            ),
        )


def _each(service, noun):
    """Run `service(request, obj)` per object; a refusal (its state forbids it, or it is gone) is
    reported, never raised."""

    def run(request, ids):
        report = Report()
        for obj in service.model.objects.filter(pk__in=ids):
            try:
                service(request, obj)
                report.done += 1
            except DomainError as exc:  # Conflict (the state), NotFound, InvalidInput
                report.refused.append(f"{noun(obj)} ({exc.message})")
        return report

    return run


def _on(model, function):
    function.model = model
    return function


def _run_verb(name, label, description, done, service, offered):
    return Verb(
        name,
        label,
        description,
        done,
        _each(_on(WorkflowRun, lambda request, run: service(run_id=run.run_id)), lambda r: str(r.run_id)),
        offered=offered,
    )


RUN_VERBS = (
    _run_verb(
        "cancel_runs",
        "Cancel",
        "Cancel selected runs",
        "Cancelled {n} run(s).",
        runs.cancel_run,
        lambda run: run.status in (RunStatus.RUNNING, RunStatus.PAUSED),
    ),
    _run_verb(
        "pause_runs",
        "Pause",
        "Pause selected runs",
        "Paused {n} run(s).",
        runs.pause_run,
        lambda run: run.status == RunStatus.RUNNING,
    ),
    _run_verb(
        "resume_runs",
        "Resume",
        "Resume selected runs",
        "Resumed {n} run(s).",
        runs.resume_run,
        lambda run: run.status == RunStatus.PAUSED,
    ),
)


def _step_name(step):
    return str(step)


def _retry(request, step):
    index = None if step.map_index == WHOLE_STEP else step.map_index
    runs.retry_step(run_id=step.run_id, step_id=step.step_id, map_index=index)


def _decide(approved):
    def decide(request, step):
        if step.map_index != WHOLE_STEP:
            raise Conflict("A map item is not an approval step.")
        runs.decide_approval(
            run_id=step.run_id,
            step_id=step.step_id,
            approved=approved,
            by=request.user.get_username(),
            comment="decided in the admin",
        )

    return decide


STEP_VERBS = (
    Verb(
        "retry_from_steps",
        "Retry from this step",
        "Retry the run from selected failed steps",
        "Retried from {n} step(s).",
        _each(_on(StepRun, _retry), _step_name),
        offered=lambda step: (
            step.status in (StepStatus.FAILED, StepStatus.CANCELLED) and step.run.status == RunStatus.FAILED
        ),
    ),
    Verb(
        "approve_steps",
        "Approve",
        "Approve selected approval steps",
        "Approved {n} step(s).",
        _each(_on(StepRun, _decide(True)), _step_name),
        offered=lambda step: step.status == StepStatus.AWAITING_APPROVAL,
    ),
    Verb(
        "reject_steps",
        "Reject",
        "Reject selected approval steps",
        "Rejected {n} step(s).",
        _each(_on(StepRun, _decide(False)), _step_name),
        offered=lambda step: step.status == StepStatus.AWAITING_APPROVAL,
    ),
)


def _step_url(step_pk):
    return reverse("admin:workflows_steprun_change", args=[step_pk])


def _agent(step):
    return agent_link(step.task) if step.task is not None else None


class StepRunInline(admin.TabularInline):
    """The run's whole steps (a map step's own page counts its items by status and links to them)."""

    model = StepRun
    # No "<step> (<status>)" caption above each row (static/orchestrator/admin.css): the columns say it.
    classes = ["uncaptioned"]
    fields = [
        "step_link",
        "kind",
        "coloured_status",
        "attempt",
        "agent",
        "started_at",
        "finished_at",
        "outcome",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(map_index=WHOLE_STEP)
            .select_related("task__assigned_agent")  # each step's agent, by name: no query per row
        )

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="step")
    def step_link(self, step):
        return format_html('<a href="{}">{}</a>', _step_url(step.pk), step.step_id)

    @admin.display(description="status")
    def coloured_status(self, step):
        return _coloured(step.status)

    @admin.display(description="agent")
    def agent(self, step):
        return _agent(step)

    @admin.display(description="output / error")
    def outcome(self, step):
        return _pretty(step.error if step.error is not None else step.output)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(VerbsMixin, ShownMixin, ReadOnlyAdmin):
    list_display = ["run_id", "definition", "coloured_status", "priority", "created_at", "finished_at"]
    list_filter = ["status", "definition__name"]
    search_fields = ["=run_id", "definition__name"]
    list_select_related = ["definition"]
    show_full_result_count = False
    verbs = RUN_VERBS
    inlines = [StepRunInline]
    fields = [
        "run_id",
        "definition_link",
        "status",
        "priority",
        "depth",
        "created_at",
        "finished_at",
        "graph",
        *ShownMixin.RESULT_FIELDS,
    ]
    readonly_fields = fields

    @admin.display(description="workflow")
    def definition_link(self, run):
        url = reverse("admin:workflows_workflowdefinition_change", args=[run.definition_id])
        return format_html('<a href="{}">{}</a>', url, run.definition)

    @admin.display(description="step graph")
    def graph(self, run):
        rows = StepRun.objects.filter(run=run, map_index=WHOLE_STEP).values_list("step_id", "status", "pk")
        statuses = {step_id: status for step_id, status, _ in rows}
        pks = {step_id: pk for step_id, _, pk in rows}
        return step_graph.render(
            run.definition.spec.get("steps", []),
            statuses,
            link=lambda step_id: _step_url(pks[step_id]) if step_id in pks else None,
        )


@admin.register(StepRun)
class StepRunAdmin(VerbsMixin, ShownMixin, ReadOnlyAdmin):
    list_display = ["__str__", "run", "kind", "coloured_status", "attempt", "started_at", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["=run__run_id", "step_id"]
    list_select_related = ["run__definition"]
    show_full_result_count = False
    verbs = STEP_VERBS
    fields = [
        "run_link",
        "step_id",
        "map_index",
        "kind",
        "status",
        "attempt",
        "agent",
        "task_link",
        "items_total",
        "remaining_items",
        "items_by_status",
        "due_at",
        "decided_by",
        "created_at",
        "started_at",
        "finished_at",
        *ShownMixin.RESULT_FIELDS,
    ]
    readonly_fields = fields

    @admin.display(description="run")
    def run_link(self, step):
        url = reverse("admin:workflows_workflowrun_change", args=[step.run_id])
        return format_html('<a href="{}">{}</a> ({})', url, step.run_id, step.run.status)

    @admin.display(description="agent")
    def agent(self, step):
        return _agent(step)

    @admin.display(description="items")
    def items_by_status(self, step):
        """A map step's items counted by status, each count linking to those items' list."""
        if step.kind != StepKind.MAP or step.map_index != WHOLE_STEP:
            return None
        summary = items.summaries(run_id=step.run_id).get(step.step_id, {"by_status": {}})
        changelist = reverse("admin:workflows_steprun_changelist")
        return format_html_join(
            ", ",
            '<a href="{}?{}">{} {}</a>',
            (
                (
                    changelist,
                    urlencode({"run": step.run_id, "step_id": step.step_id, "status": status}),
                    count,
                    status,
                )
                for status, count in sorted(summary["by_status"].items())
            ),
        )

    @admin.display(description="task")
    def task_link(self, step):
        if step.task_id is None:
            return None
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:tasks_task_change", args=[step.task_id]), step.task_id
        )


@admin.register(WorkflowEvent)
class WorkflowEventAdmin(ReadOnlyAdmin):
    list_display = ["run", "step_id", "map_index", "status", "attempt", "reason", "created_at"]
    list_select_related = ["run__definition"]
    show_full_result_count = False
