import json

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from agents.models import Agent
from orchestrator_project.admin_verbs import Report, Verb, VerbsMixin
from orchestrator_project.errors import DomainError

from . import services
from .models import (
    CANCELLABLE_STATUSES,
    RETRYABLE_BY_OPERATOR,
    TERMINAL_STATUSES,
    Task,
    TaskEvent,
    TaskStatus,
)

STATUS_COLOURS = {
    TaskStatus.PENDING: "#6c757d",
    TaskStatus.ASSIGNED: "#0d6efd",
    TaskStatus.RUNNING: "#0dcaf0",
    TaskStatus.COMPLETED: "#198754",
    TaskStatus.FAILED: "#dc3545",
    TaskStatus.CANCELLED: "#adb5bd",
}


def _why(details):
    """An `assigned` event's choice in a line: the strategy, its rule, and the figures it compared."""
    parts = [details.get("strategy", "?")]
    if details.get("rule"):
        parts.append(f"({details['rule']})")
    parts.append(f"among {details.get('candidates', '?')} agent(s)")
    if details.get("pool") and details["pool"] != details.get("candidates"):
        parts.append(f"(pair drawn from the {details['pool']} cheapest)")
    if details.get("avoided"):
        parts.append(f"avoiding {details['avoided']} already tried")
    for index, score in enumerate(details.get("scores") or []):
        label = "chose" if index == 0 else "over"
        latency = "?" if score["latency_ms"] is None else f"{score['latency_ms']:.0f}"
        parts.append(
            f"{label} {score['agent_id'][:8]}: cost {score['cost_ms']:.0f} ms ({latency} ms,"
            f" {100 * score['success_rate']:.1f}% ok, load {score['load']}/{score['max_concurrency']})"
        )
    for key in ("load", "score_ms", "weight", "turn"):
        if key in details:
            parts.append(f"{key} {details[key]}")
    return " ".join(parts)


def _precise(moment):
    """A time to the millisecond, with its zone: a task's events are often a few milliseconds apart."""
    moment = timezone.localtime(moment)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} {moment.tzname()}"


class TaskEventInline(admin.TabularInline):
    model = TaskEvent
    # No "<task id> <kind>" caption above each row (static/orchestrator/admin.css): the columns say it.
    classes = ["uncaptioned"]
    fields = ["at", "kind", "status", "attempt", "agent", "reason", "why"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._agents = None  # {agent id: Agent} of the task's events; the admin makes an inline per request

    class Media:
        css = {"all": ["orchestrator/admin.css"]}

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="created at")
    def at(self, event):
        return format_html(
            '<time datetime="{}">{}</time>', event.created_at.isoformat(), _precise(event.created_at)
        )

    @admin.display(description="agent")
    def agent(self, event):
        """By name and linked, as in the task list: two queries for the whole history, not one a row."""
        if event.agent_id is None:
            return None
        if self._agents is None:
            ids = TaskEvent.objects.filter(task_id=event.task_id).values("agent_id")
            self._agents = {agent.pk: agent for agent in Agent.objects.filter(pk__in=ids).only("name")}
        agent = self._agents.get(event.agent_id)
        return event.agent_id if agent is None else agent_anchor(agent)  # None: unregistered since

    @admin.display(description="details (why this agent)")
    def why(self, event):
        if not event.details:
            return ""
        if event.kind == "assigned" and "strategy" in event.details:
            return _why(event.details)
        return ", ".join(f"{key} {value}" for key, value in event.details.items())


class DeadLetterFilter(admin.SimpleListFilter):
    """ "Failed" as a dead-letter queue: tasks that failed for good, oldest first, ready to retry."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [
            ("dead_letter", "Dead letters (failed)"),
            ("waiting_retry", "Waiting to retry"),
            ("in_flight", "In flight"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "dead_letter":
            return queryset.filter(status=TaskStatus.FAILED)
        if self.value() == "waiting_retry":
            return queryset.filter(status=TaskStatus.PENDING, attempts__gt=0)
        if self.value() == "in_flight":
            return queryset.filter(status__in=[TaskStatus.ASSIGNED, TaskStatus.RUNNING])
        return queryset


def agent_link(task):
    """A task's agent by name, linked to its admin page, its id as the tooltip (names need not be unique);
    the bare id if the agent is gone (the id has no foreign key constraint). Reads `task.assigned_agent`:
    a page listing tasks selects it with them (select_related), or each costs a query."""
    if task.assigned_agent_id is None:
        return None
    try:
        agent = task.assigned_agent  # None when a join found no row
    except ObjectDoesNotExist:  # looked up on its own, and not found
        agent = None
    if agent is None:
        return task.assigned_agent_id
    return agent_anchor(agent)


def agent_anchor(agent):
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    return format_html('<a href="{}" title="{}">{}</a>', url, agent.pk, agent.name)


def _pretty(value):
    return format_html(
        "<pre style='white-space: pre-wrap; max-height: 30em; overflow: auto'>{}</pre>",
        json.dumps(value, indent=2, ensure_ascii=False, default=str),
    )


def _each(service):
    """Run `service(request, task_id)` per task; a refusal (the task's state forbids it, or it is gone)
    is reported."""

    def run(request, ids):
        report = Report()
        for task_id in ids:
            try:
                service(request, task_id)
                report.done += 1
            except DomainError as exc:  # Conflict (the task's state), NotFound (deleted meanwhile)
                report.refused.append(f"{task_id} ({exc.message})")
        return report

    return run


VERBS = (
    Verb(
        "retry_tasks",
        "Retry",
        "Retry selected failed/cancelled tasks",
        "Retried {n} task(s).",
        _each(lambda request, task_id: services.retry_task(task_id=task_id)),
        offered=lambda task: task.status in RETRYABLE_BY_OPERATOR,
    ),
    Verb(
        "cancel_tasks",
        "Cancel",
        "Cancel selected tasks",
        "Cancelled {n} task(s).",
        _each(
            lambda request, task_id: services.cancel_task(
                task_id=task_id, reason=f"cancelled by {request.user} in the admin"
            )
        ),
        offered=lambda task: task.status in CANCELLABLE_STATUSES,
    ),
)


@admin.register(Task)
class TaskAdmin(VerbsMixin, admin.ModelAdmin):
    list_display = ["task_id", "type", "coloured_status", "priority", "agent", "attempts", "age"]
    list_select_related = ["assigned_agent"]  # the agent's name, in the page's one query
    list_filter = [DeadLetterFilter, "status", "priority", "type", "auto_dispatch"]
    search_fields = ["=task_id", "type", "description", "=idempotency_key"]
    list_per_page = 50
    show_full_result_count = False  # counting millions of rows on every page view is not worth it
    ordering = ["-created_at"]
    verbs = VERBS
    inlines = [TaskEventInline]
    readonly_fields = [
        "task_id",
        "type",
        "description",
        "pretty_input",
        "required_capabilities",
        "priority",
        "status",
        "assigned_agent",
        "pretty_result",
        "pretty_error",
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
        "next_attempt_at",
        "failover_until",
        "lease_expires_at",
    ]
    exclude = [
        "input_data",
        "result",
        "error",
        "avoid_agents",
        "created_by",
        "retry_base",
        "request_fingerprint",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # A task changes only through its verbs: the change page is read-only, even for operators.
        return (
            False
            if obj is not None and request.method == "POST"
            else super().has_change_permission(request, obj)
        )

    def has_delete_permission(self, request, obj=None):
        # Only a finished task may go: an unfinished one holds an agent's slot (or is about to), and
        # nothing would give it back. Cancel it first. The bulk action's confirmation asks per task.
        if obj is not None and obj.status not in TERMINAL_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        # Guarded, like every change of a task: an operator may have retried it since the page showed.
        Task.objects.filter(pk=obj.pk, status__in=TERMINAL_STATUSES).delete()

    def delete_queryset(self, request, queryset):
        queryset.filter(status__in=TERMINAL_STATUSES).delete()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="status", ordering="status")
    def coloured_status(self, task):
        return format_html('<b style="color:{}">{}</b>', STATUS_COLOURS.get(task.status, "#000"), task.status)

    @admin.display(description="agent", ordering="assigned_agent__name")
    def agent(self, task):
        return agent_link(task)  # joined by list_select_related: no query per row

    @admin.display(description="age", ordering="created_at")
    def age(self, task):
        return timesince(task.created_at, timezone.now())

    @admin.display(description="input data")
    def pretty_input(self, task):
        return _pretty(task.input_data)

    @admin.display(description="result")
    def pretty_result(self, task):
        return _pretty(task.result)

    @admin.display(description="error")
    def pretty_error(self, task):
        return _pretty(task.error)
