import json

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from orchestrator_project.errors import DomainError

from . import services
from .models import Task, TaskEvent, TaskStatus

STATUS_COLOURS = {
    TaskStatus.PENDING: "#6c757d",
    TaskStatus.ASSIGNED: "#0d6efd",
    TaskStatus.RUNNING: "#0dcaf0",
    TaskStatus.COMPLETED: "#198754",
    TaskStatus.FAILED: "#dc3545",
    TaskStatus.CANCELLED: "#adb5bd",
}


class TaskEventInline(admin.TabularInline):
    model = TaskEvent
    fields = ["created_at", "kind", "status", "attempt", "agent_id", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


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


def _pretty(value):
    return format_html(
        "<pre style='white-space: pre-wrap; max-height: 30em; overflow: auto'>{}</pre>",
        json.dumps(value, indent=2, ensure_ascii=False, default=str),
    )


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["task_id", "type", "coloured_status", "priority", "assigned_agent_id", "attempts", "age"]
    list_filter = [DeadLetterFilter, "status", "priority", "type", "auto_dispatch"]
    search_fields = ["=task_id", "type", "description", "=idempotency_key"]
    list_per_page = 50
    show_full_result_count = False  # counting millions of rows on every page view is not worth it
    ordering = ["-created_at"]
    actions = ["retry_tasks", "cancel_tasks"]
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
        return (
            False
            if obj is not None and request.method == "POST"
            else super().has_change_permission(request, obj)
        )

    @admin.display(description="status", ordering="status")
    def coloured_status(self, task):
        return format_html('<b style="color:{}">{}</b>', STATUS_COLOURS.get(task.status, "#000"), task.status)

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

    def _each(self, request, queryset, verb, action):
        done, refused = 0, []
        for task_id in queryset.values_list("task_id", flat=True):
            try:
                action(task_id=task_id)
                done += 1
            except DomainError as exc:
                refused.append(f"{task_id}: {exc.message}")
        self.message_user(request, f"{verb} {done} task(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused[:10]), messages.WARNING)

    @admin.action(description="Retry selected failed/cancelled tasks")
    def retry_tasks(self, request, queryset):
        self._each(request, queryset, "Retried", services.retry_task)

    @admin.action(description="Cancel selected tasks")
    def cancel_tasks(self, request, queryset):
        self._each(request, queryset, "Cancelled", services.cancel_task)
