from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from orchestrator_project.admin_verbs import Report, Verb, VerbsMixin

from . import outbox, services, signals
from .models import Agent, AgentRoute, AgentStatus, AgentStatusChange, CircuitState
from .serializers import AgentRegistrationSerializer

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

# Edits that can let the agent take work it could not take before: dispatch is woken when they commit.
CAPACITY_FIELDS = {"capabilities", "max_concurrency"}
# The settings agent.registered carries: an edit of one publishes the agent's settings again, as a
# registration of its endpoint does, so that a consumer keeping the fleet from the stream sees it.
PUBLISHED_FIELDS = {"name", "type", "capabilities", "max_concurrency"}


class AgentForm(forms.ModelForm):
    """An operator's edit, held to the rules registration applies (agents/serializers.py): the admin's
    own form fields would store a capability with a space, a limit of 0 (an agent that silently never
    gets work) or metadata that is not an object, all of which the API refuses."""

    class Meta:
        model = Agent
        fields = sorted(EDITABLE_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The number inputs offer registration's bounds (the model's allow a limit of 0, which is refused).
        rules = AgentRegistrationSerializer().fields
        for name, field in self.fields.items():
            for bound in ("min_value", "max_value"):
                value = getattr(rules.get(name), bound, None)
                if value is not None:
                    field.widget.attrs[bound.removesuffix("_value")] = value

    def clean(self):
        cleaned = super().clean()
        rules = AgentRegistrationSerializer().fields
        edited = {name: cleaned[name] for name in self.changed_data if name in rules and name in cleaned}
        if edited:
            registration = AgentRegistrationSerializer(data=edited, partial=True)
            if registration.is_valid():
                cleaned.update(registration.validated_data)
            for name, detail in registration.errors.items():
                self.add_error(name, [str(message) for message in _messages(detail)])
        return cleaned


def _messages(detail):
    if isinstance(detail, dict):
        for value in detail.values():
            yield from _messages(value)
    elif isinstance(detail, list):
        for value in detail:
            yield from _messages(value)
    else:
        yield detail


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


class AgentRouteInline(admin.TabularInline):
    """What the adaptive strategy learned of the agent per capability (docs/routing.md). Read-only: it
    is learned from the agent's calls, never edited."""

    model = AgentRoute
    verbose_name = "learned routing figure"
    verbose_name_plural = "learned routing (adaptive strategy)"
    fields = ["capability", "latency", "success", "samples", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["capability"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="latency (ms)")
    def latency(self, route):
        return "–" if route.latency_ms is None else f"{route.latency_ms:.1f}"

    @admin.display(description="success rate")
    def success(self, route):
        return f"{100 * route.success_rate:.1f}%"


def _by(request, verb):
    return f"{verb} by {request.user} in the admin"


def _agents(ids):
    return {
        agent.pk: agent
        for agent in Agent.objects.filter(pk__in=ids).only(
            "name", "status", "drained_by_operator", "circuit_state"
        )
    }


def _one_by_one(service, verb, verdict):
    """Run the service per agent; `verdict(change, agent before)` says (why not, or None; a note, or None)."""

    def run(request, ids):
        report, before = Report(), _agents(ids)
        for pk in ids:
            change = service(agent_id=pk, reason=_by(request, verb))
            if change is None:
                report.refused.append(f"{pk} (no longer registered)")
                continue
            refused, note = verdict(change, before.get(pk))
            if refused:
                report.refused.append(f"{change.name} ({refused})")
                continue
            report.done += 1
            if note:
                report.notes.append(f"{change.name} is {change.status}: {note}")
        return report

    return run


def _drained(change, before):
    if change.moved:
        return None, None
    if change.status == AgentStatus.DRAINING:
        return "already draining", None
    return None, "it comes back draining"  # offline or unhealthy: the drain waits for its return


def _resumed(change, before):
    if change.moved:
        return None, "its heartbeat had expired" if change.status == AgentStatus.OFFLINE else None
    if getattr(before, "drained_by_operator", False):  # offline or unhealthy: no longer back draining
        return None, "it comes back online"
    return f"not draining: {change.status}", None


def _mark_offline(request, ids):
    moved = {
        change.agent_id
        for change in services.mark_offline(agent_ids=ids, reason=_by(request, "marked offline"))
    }
    report = Report(done=len(moved))
    for agent in _agents(set(ids) - moved).values():
        report.refused.append(f"{agent.name} (already offline)")
    return report


def _reset_circuit(request, ids):
    closed = [agent.name for agent in _agents(ids).values() if agent.circuit_state == CircuitState.CLOSED]
    report = Report(done=services.reset_circuit(agent_ids=ids) - len(closed))
    report.refused.extend(f"{name} (circuit already closed)" for name in closed)
    return report


VERBS = (
    Verb(
        "drain",
        "Drain",
        "Drain selected agents (finish running work, take nothing new)",
        "Drained {n} agent(s).",
        _one_by_one(services.drain, "drained", _drained),
        offered=lambda agent: agent.status != AgentStatus.DRAINING,
    ),
    Verb(
        "resume",
        "Resume",
        "Resume selected agents",
        "Resumed {n} agent(s).",
        _one_by_one(services.resume, "resumed", _resumed),
        offered=lambda agent: agent.status == AgentStatus.DRAINING or agent.drained_by_operator,
    ),
    Verb(
        "mark_offline",
        "Mark offline",
        "Mark selected agents offline (their work is handed back)",
        "Marked {n} agent(s) offline.",
        _mark_offline,
        offered=lambda agent: agent.status != AgentStatus.OFFLINE,
    ),
    Verb(
        "reset_circuit",
        "Reset circuit",
        "Reset circuit breaker of selected agents",
        "Reset the circuit of {n} agent(s).",
        _reset_circuit,
        offered=lambda agent: agent.circuit_state != CircuitState.CLOSED,
    ),
)


@admin.register(Agent)
class AgentAdmin(VerbsMixin, admin.ModelAdmin):
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
    verbs = VERBS  # drain, resume, mark offline, reset circuit; deleting one unregisters it (below)
    form = AgentForm
    inlines = [AgentRouteInline, AgentStatusChangeInline]
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

    def save_model(self, request, obj, form, change):
        # Only the edited columns: a whole-row save would write back the load, status and heartbeat
        # read when the form was posted over whatever dispatch and heartbeats wrote since.
        edited = [name for name in form.changed_data if name in EDITABLE_FIELDS]
        if not edited:
            return
        obj.save(update_fields=[*edited, "updated_at"])
        if PUBLISHED_FIELDS.intersection(edited):
            # The status as of now: the UPDATE holds the row, so a status change either committed before
            # it (read here) or waits for this commit (its event follows this one).
            obj.status = Agent.objects.values_list("status", flat=True).get(pk=obj.pk)
            outbox.registered(obj, at=obj.updated_at)
        if CAPACITY_FIELDS.intersection(edited):
            # A ring inside the admin's transaction: dispatchers wake when it commits, never if not.
            signals.capacity_freed.send(sender=Agent, agent_ids=[obj.pk])

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

    def delete_model(self, request, obj):
        # Unregistering hands the agent's work back before the row goes; a plain delete would strand it.
        services.unregister_agent(agent_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.unregister_agent(agent_id=pk)
