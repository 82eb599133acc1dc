import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class TaskStatus(models.TextChoices):
    PENDING = "pending"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventKind(models.TextChoices):
    """What happened to a task: each kind is one transition of the lifecycle below."""

    CREATED = "created"
    ASSIGNED = "assigned"
    SENT = "sent"
    STARTED = "started"
    RETRYING = "retrying"
    REASSIGNED = "reassigned"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REQUEUED = "requeued"


@dataclass(frozen=True)
class Move:
    """A transition: the statuses a task may be in for it, and the status it leaves the task in."""

    sources: tuple
    target: str


_P, _A, _R = TaskStatus.PENDING, TaskStatus.ASSIGNED, TaskStatus.RUNNING
_C, _F, _X = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED

# The task lifecycle: every change of a task's status, named by the event it records. Nothing else
# moves a task: tasks/transitions.py writes each as one guarded UPDATE together with its event row.
# fmt: off
LIFECYCLE = {
    # event                  from           to
    EventKind.CREATED:    Move((),           _P),  # an API client created it
    EventKind.ASSIGNED:   Move((_P,),        _A),  # a dispatch round (or an operator) gave it an agent slot
    EventKind.SENT:       Move((_A,),        _R),  # its request went out to the agent
    EventKind.STARTED:    Move((_A, _R),     _R),  # the agent accepted it (202) and will report later
    EventKind.COMPLETED:  Move((_A, _R),     _C),  # the agent's answer or report carried a result
    EventKind.RETRYING:   Move((_A, _R),     _P),  # the attempt failed; another follows after a backoff
    EventKind.REASSIGNED: Move((_A, _R),     _P),  # its agent or worker went away (not the task's fault)
    EventKind.FAILED:     Move((_P, _A, _R), _F),  # failed for good: retries spent, refused, deadline
    EventKind.CANCELLED:  Move((_P, _A, _R), _X),  # an operator cancelled it
    EventKind.REQUEUED:   Move((_F, _X),     _P),  # an operator runs it again
}
# fmt: on

TERMINAL_STATUSES = (_C, _F, _X)
UNFINISHED_STATUSES = (_P, _A, _R)
IN_FLIGHT_STATUSES = (_A, _R)
CANCELLABLE_STATUSES = LIFECYCLE[EventKind.CANCELLED].sources
RETRYABLE_BY_OPERATOR = LIFECYCLE[EventKind.REQUEUED].sources


def sql_list(statuses):
    """Statuses as an SQL list literal, for statements written once: `('assigned', 'running')`."""
    return "(" + ", ".join(f"'{status}'" for status in statuses) + ")"


def default_max_retries():
    return settings.TASK_MAX_RETRIES


def default_timeout():
    return settings.TASK_DEFAULT_TIMEOUT


class Task(models.Model):
    task_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    input_data = models.JSONField(default=dict, blank=True)
    required_capabilities = ArrayField(models.CharField(max_length=100), default=list)
    # 1 is the most urgent; claims order by (priority, created_at).
    priority = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    assigned_agent = models.ForeignKey(
        "agents.Agent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
        db_constraint=False,
        db_index=False,  # indexed by task_agent_created, which leads with it
    )
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # Attempts made so far; also the fencing token: only the current attempt may change the task.
    attempts = models.PositiveIntegerField(default=0)
    # `attempts` when an operator last retried the task: the retry budget counts from here.
    retry_base = models.PositiveIntegerField(default=0, editable=False)
    max_retries = models.PositiveIntegerField(default=default_max_retries)
    timeout_seconds = models.PositiveIntegerField(default=default_timeout)
    deadline = models.DateTimeField(null=True, blank=True)
    auto_dispatch = models.BooleanField(default=True)
    strategy = models.CharField(max_length=40, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    # The number of the task's latest event (its creation is 1): the order of its outbox events, bumped
    # by the UPDATE of every move (transitions.py), so it costs no lock of its own.
    event_sequence = models.PositiveIntegerField(default=1, editable=False)
    # Agents that failed this task: retries prefer others when there are any.
    avoid_agents = ArrayField(models.UUIDField(), default=list, blank=True)
    # A prompt failover (TASK_FAILOVER_ATTEMPTS): until then the task goes only to agents not in
    # avoid_agents, though it is due at once; after it, to any agent, as any retry.
    failover_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    # The workflow step run (an app above this one) whose attempt this task is, or NULL. Every move's
    # RETURNING carries it, so a task that ends tells signals.step_tasks_ended without a query of its
    # own, and a task outside any workflow costs nothing more.
    workflow_step_id = models.BigIntegerField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "task_id"]
        indexes = [
            # The dispatch claim: pending, auto-dispatched tasks in priority order, then age.
            models.Index(
                fields=["priority", "created_at"],
                name="task_dispatch_queue",
                condition=models.Q(status=TaskStatus.PENDING, auto_dispatch=True),
            ),
            # Whether a round could place anything: the pending tasks' distinct capability sets, read
            # by a skip scan (tasks/engine/claim.py _WORTH_A_ROUND_SQL), however deep the queue.
            models.Index(
                fields=["required_capabilities"],
                name="task_pending_capabilities",
                condition=models.Q(status=TaskStatus.PENDING, auto_dispatch=True),
            ),
            # The lease sweep: tasks in flight whose worker or agent may have died.
            models.Index(
                fields=["lease_expires_at"],
                name="task_lease_expiry",
                condition=models.Q(status__in=IN_FLIGHT_STATUSES),
            ),
            # The deadline sweep.
            models.Index(
                fields=["deadline"],
                name="task_deadline",
                condition=models.Q(status__in=UNFINISHED_STATUSES, deadline__isnull=False),
            ),
            # Listing: newest first, keyset-friendly; and the common filters.
            models.Index(fields=["-created_at", "task_id"], name="task_created"),
            models.Index(fields=["status", "-created_at"], name="task_status_created"),
            # The agent filter of the list, and hand-backs of an agent's in-flight tasks.
            models.Index(fields=["assigned_agent", "-created_at"], name="task_agent_created"),
            models.Index(fields=["type", "-created_at"], name="task_type_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(priority__gte=1, priority__lte=10), name="task_priority_1_10"
            ),
        ]

    def __str__(self):
        return f"{self.type} {self.task_id} ({self.status})"

    @property
    def is_terminal(self):
        return self.status in TERMINAL_STATUSES

    @property
    def agent_id(self):
        return self.assigned_agent_id


class TaskEvent(models.Model):
    """Every transition of a task leaves one row: its history, the dashboard's feed, the metrics' source."""

    id = models.BigAutoField(primary_key=True)
    task = models.ForeignKey(  # indexed by task_event_task, which leads with it
        Task, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    status = models.CharField(max_length=16, choices=TaskStatus.choices)
    attempt = models.PositiveIntegerField(default=0)
    agent_id = models.UUIDField(null=True, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["task", "id"], name="task_event_task")]

    def __str__(self):
        return f"{self.task_id} {self.kind}"
