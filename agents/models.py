import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models

from orchestrator_project.accounts.models import hash_token, new_raw_token
from orchestrator_project.signing import new_secret

# The prefix of an agent's API token (agents/authentication.py resolves them).
AGENT_TOKEN_PREFIX = "aoa_"


class AgentStatus(models.TextChoices):
    ONLINE = "online"
    OFFLINE = "offline"
    DRAINING = "draining"
    UNHEALTHY = "unhealthy"


# Statuses whose heartbeat can expire: everything but offline (the liveness sweep's index predicate).
LIVE_STATUSES = [AgentStatus.ONLINE, AgentStatus.DRAINING, AgentStatus.UNHEALTHY]


class CircuitState(models.TextChoices):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def default_heartbeat_timeout():
    return settings.AGENT_HEARTBEAT_TIMEOUT


def default_max_concurrency():
    return settings.AGENT_DEFAULT_MAX_CONCURRENCY


class Agent(models.Model):
    agent_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=2000, unique=True, help_text="Base URL of the agent.")
    capabilities = ArrayField(models.CharField(max_length=100), default=list)
    metadata = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=16, choices=AgentStatus.choices, default=AgentStatus.ONLINE)
    # An operator's drain sticks: the agent's own heartbeat cannot undo it, only `resume` can.
    drained_by_operator = models.BooleanField(default=False)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    heartbeat_timeout = models.PositiveIntegerField(default=default_heartbeat_timeout)
    # last_heartbeat + heartbeat_timeout, kept as a column so the liveness sweep is one indexed query.
    heartbeat_expires_at = models.DateTimeField(null=True, blank=True)
    # The heartbeat rate limit's state (GCRA's "theoretical arrival time"): a heartbeat is let through
    # while this is at most one window ahead of now, and pushes it on by one emission interval. Kept on
    # the row the heartbeat updates anyway, so limiting costs no extra round trip (agents/pacing.py).
    heartbeat_tat = models.DateTimeField(null=True, blank=True, editable=False)
    last_metrics = models.JSONField(default=dict, blank=True)

    max_concurrency = models.PositiveIntegerField(default=default_max_concurrency)
    # Tasks this orchestrator has in flight on the agent; changed only together with task transitions.
    current_load = models.IntegerField(default=0)
    # What the agent last said about its own load (it may serve other clients too).
    reported_load = models.IntegerField(null=True, blank=True)
    weight = models.PositiveIntegerField(default=1)

    circuit_state = models.CharField(max_length=10, choices=CircuitState.choices, default=CircuitState.CLOSED)
    consecutive_failures = models.IntegerField(default=0)
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    circuit_retry_at = models.DateTimeField(null=True, blank=True)

    success_count = models.BigIntegerField(default=0)
    failure_count = models.BigIntegerField(default=0)
    avg_latency_ms = models.FloatField(null=True, blank=True, help_text="Exponential moving average.")
    success_rate = models.FloatField(default=1.0, help_text="Exponential moving average of successes.")

    probe_failures = models.IntegerField(default=0)
    last_probe_at = models.DateTimeField(null=True, blank=True)
    # For services that never send heartbeats (the seed's RAG and rule generator): a successful health
    # probe counts as one, so they go offline when they stop answering and come back when they answer.
    probe_heartbeats = models.BooleanField(default=False)

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    signing_secret = models.CharField(max_length=100, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "agent_id"]
        # No index on heartbeat_expires_at (nor on anything else a heartbeat writes): a heartbeat is then a
        # HOT update, which writes none of the table's indexes (seven, one of them GIN) and leaves no
        # index bloat behind; the table's fillfactor (migration 0005) keeps room on each page for it.
        # The liveness sweep reads the table instead, once every few seconds (agents/liveness.py).
        indexes = [
            GinIndex(fields=["capabilities"], name="agent_capabilities_gin"),
            models.Index(fields=["status", "type"], name="agent_status_type"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(current_load__gte=0), name="agent_load_not_negative"),
        ]

    def __str__(self):
        return f"{self.name} ({self.agent_id})"

    def issue_credentials(self):
        """Give the agent a fresh token and signing secret; returns the raw token (only its hash is kept).

        Old credentials stop working as soon as this is saved.
        """
        raw = new_raw_token(AGENT_TOKEN_PREFIX)
        self.token_hash = hash_token(raw)
        self.signing_secret = new_secret()
        return raw

    def is_stale(self, now):
        """The heartbeat deadline has passed (the sweep will, or did, mark the agent offline)."""
        return self.heartbeat_expires_at is not None and self.heartbeat_expires_at <= now

    def seconds_since_heartbeat(self, now):
        if self.last_heartbeat is None:
            return None
        return max(0, int((now - self.last_heartbeat).total_seconds()))


class AgentStatusChange(models.Model):
    """One row per status change (like healthchecks' Flip): the history view, the notifier and metrics."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=16, choices=AgentStatus.choices, blank=True)
    new_status = models.CharField(max_length=16, choices=AgentStatus.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.agent_id}: {self.old_status or '-'} -> {self.new_status}"


class AgentRoute(models.Model):
    """What the adaptive strategy has learned of one agent serving one capability (agents/routing.py).

    `capability` is a task's routing key: its one required capability, several joined by commas, or "*"
    for tasks that name none. Updated by the same statement that gives the call's slot back
    (agents/capacity.py), read by the same statement that reads a round's eligible agents.
    """

    # Indexed by agent_route_unique, which leads with it.
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="routes", db_index=False)
    capability = models.CharField(max_length=500)
    latency_ms = models.FloatField(
        null=True, help_text="Peak-sensitive moving average of call latency (ms), failure penalties included."
    )
    success_rate = models.FloatField(help_text="Time-decayed moving average of successes.")
    samples = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["agent_id", "capability"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "capability"], name="agent_route_unique"),
        ]

    def __str__(self):
        return f"{self.agent_id} / {self.capability}"
