from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from . import services
from .models import Agent, AgentStatus, AgentStatusChange

STATUS_COLORS = {
    AgentStatus.ONLINE: "#2e7d32",
    AgentStatus.DRAINING: "#ef6c00",
    AgentStatus.UNHEALTHY: "#c62828",
    AgentStatus.OFFLINE: "#616161",
}

# What an operator may edit by hand; everything else is shown read-only.
EDITABLE_FIELDS = {
    "name",
    "type",
    "capabilities",
    "metadata",
    "max_concurrency",
    "weight",
    "heartbeat_timeout",
    "probe_heartbeats",
}


class AgentStatusChangeInline(admin.TabularInline):
    """The agent's status history. Read-only: history is written by the status changes themselves."""

    model = AgentStatusChange
    fields = ["created_at", "old_status", "new_status", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "type",
        "colored_status",
        "capability_list",
        "load",
        "heartbeat_age",
        "circuit_state",
    ]
    list_filter = ["status", "type", "circuit_state"]
    search_fields = ["name", "endpoint", "capabilities"]
    ordering = ["name"]
    actions = ["drain", "resume", "mark_offline", "reset_circuit"]
    inlines = [AgentStatusChangeInline]
    # Statuses, load and breaker state change only through the services, which leave history rows;
    # the endpoint only through registration, which checks it. Credentials are never shown.
    fields = [
        "agent_id",
        "name",
        "type",
        "endpoint",
        "capabilities",
        "metadata",
        "max_concurrency",
        "weight",
        "heartbeat_timeout",
        "probe_heartbeats",
        "status",
        "drained_by_operator",
        "last_heartbeat",
        "heartbeat_expires_at",
        "current_load",
        "reported_load",
        "circuit_state",
        "consecutive_failures",
        "circuit_opened_at",
        "circuit_retry_at",
        "success_count",
        "failure_count",
        "avg_latency_ms",
        "success_rate",
        "probe_failures",
        "last_probe_at",
        "last_metrics",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [field for field in fields if field not in EDITABLE_FIELDS]

    def has_add_permission(self, request):
        # Registration hands out the agent's token once; only the API can show it to the caller.
        return False

    @admin.display(description="status", ordering="status")
    def colored_status(self, agent):
        color = STATUS_COLORS.get(agent.status, "inherit")
        return format_html('<strong style="color: {}">{}</strong>', color, agent.get_status_display())

    @admin.display(description="capabilities")
    def capability_list(self, agent):
        return ", ".join(agent.capabilities)

    @admin.display(description="load", ordering="current_load")
    def load(self, agent):
        return f"{agent.current_load}/{agent.max_concurrency}"

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat_age(self, agent):
        now = timezone.now()
        seconds = agent.seconds_since_heartbeat(now)
        if seconds is None:
            return "never"
        if agent.is_stale(now):
            return format_html(
                '<span style="color: #c62828; font-weight: bold">{} s ago (stale)</span>', seconds
            )
        return f"{seconds} s ago"

    def _report(self, request, count, verb):
        self.message_user(request, f"{count} agent(s) {verb}.", messages.SUCCESS)

    def _one_by_one(self, request, queryset, service, verb):
        changes = [
            service(agent_id=pk, reason=f"{verb} by {request.user} in the admin")
            for pk in queryset.values_list("pk", flat=True)
        ]
        self._report(request, sum(1 for change in changes if change and change.moved), verb)

    @admin.action(description="Drain selected agents (finish running work, take nothing new)")
    def drain(self, request, queryset):
        self._one_by_one(request, queryset, services.drain, "drained")

    @admin.action(description="Resume selected agents")
    def resume(self, request, queryset):
        self._one_by_one(request, queryset, services.resume, "resumed")

    @admin.action(description="Mark selected agents offline (their work is handed back)")
    def mark_offline(self, request, queryset):
        moved = services.mark_offline(
            agent_ids=list(queryset.values_list("pk", flat=True)),
            reason=f"marked offline by {request.user} in the admin",
        )
        self._report(request, len(moved), "marked offline")

    @admin.action(description="Reset circuit breaker of selected agents")
    def reset_circuit(self, request, queryset):
        self._report(
            request,
            services.reset_circuit(agent_ids=list(queryset.values_list("pk", flat=True))),
            "had their circuit reset",
        )
