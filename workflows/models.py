"""Workflows: immutable versioned definitions, their runs, and each run's step runs and events.

A definition's spec is validated once (spec.py) and never changes: a new spec under the same name is
the next version, and a run is pinned to the version it started with. A step run is one step of a run
(map_index -1), or one item of a map step (map_index 0, 1, ...). Each task-like step attempt is an
ordinary task (tasks.Task.workflow_step_id points back here); the engine (engine.py) decides which step
becomes ready when, under a row lock on its run.
"""

import uuid

from django.conf import settings
from django.db import models


class DefinitionManager(models.Manager):
    def latest(self, name):
        return self.filter(name=name).order_by("-version").first()


class WorkflowDefinition(models.Model):
    """One immutable version of a workflow: the spec as validated, with its hash."""

    definition_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    # sha256 of the canonical JSON of the spec (sorted keys, no spaces): the same spec, the same hash.
    spec_sha256 = models.CharField(max_length=64)
    spec = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DefinitionManager()

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="workflow_name_version"),
            # An identical spec posted again returns the existing version instead of a new one.
            models.UniqueConstraint(fields=["name", "spec_sha256"], name="workflow_name_sha"),
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"

    def step(self, step_id):
        return next(s for s in self.spec["steps"] if s["id"] == step_id)


class RunStatus(models.TextChoices):
    RUNNING = "running"
    PAUSED = "paused"  # no new step starts; running ones finish
    CANCELLING = "cancelling"  # no new step starts; the run ends when every step attempt has ended
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


RUN_TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
RUN_ACTIVE = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLING)


class WorkflowRun(models.Model):
    run_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Pinned at start: later versions of the workflow never change a run.
    # Indexed by wfrun_definition_created, which leads with it: a second index would only cost writes.
    definition = models.ForeignKey(
        WorkflowDefinition, on_delete=models.PROTECT, related_name="runs", db_index=False
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(default=5)
    # The sub-workflow step this run is the child of (its output becomes that step's output).
    parent_step = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs"
    )
    depth = models.PositiveSmallIntegerField(default=0)  # how deep in sub-workflows: bounded
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "run_id"]
        indexes = [
            models.Index(fields=["-created_at", "run_id"], name="wfrun_created"),
            models.Index(fields=["status", "-created_at"], name="wfrun_status_created"),
            models.Index(fields=["definition", "-created_at"], name="wfrun_definition_created"),
        ]

    def __str__(self):
        return f"{self.definition} run {self.run_id} ({self.status})"

    @property
    def is_terminal(self):
        return self.status in RUN_TERMINAL


class StepStatus(models.TextChoices):
    WAITING = "waiting"  # parents (or, for a map item, a concurrency slot) not done yet
    RUNNING = "running"  # its task, items or child run are under way
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # a condition was false, or a parent was skipped
    UPSTREAM_FAILED = "upstream_failed"  # never ran: a parent failed
    CANCELLED = "cancelled"


STEP_TERMINAL = (
    StepStatus.COMPLETED,
    StepStatus.FAILED,
    StepStatus.SKIPPED,
    StepStatus.UPSTREAM_FAILED,
    StepStatus.CANCELLED,
)
STEP_FAILED = (StepStatus.FAILED, StepStatus.UPSTREAM_FAILED, StepStatus.CANCELLED)
STEP_UNFINISHED = (StepStatus.WAITING, StepStatus.RUNNING, StepStatus.AWAITING_APPROVAL)


class StepKind(models.TextChoices):
    TASK = "task"
    MAP = "map"
    CONDITION = "condition"
    APPROVAL = "approval"
    WORKFLOW = "workflow"


WHOLE_STEP = -1  # map_index of a step itself; items of a map are 0, 1, ...


class StepRun(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Indexed by wfstep_run_step_index, which leads with it.
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps", db_index=False)
    step_id = models.CharField(max_length=100)
    map_index = models.IntegerField(default=WHOLE_STEP)
    kind = models.CharField(max_length=16, choices=StepKind.choices)
    status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.WAITING)
    # The step's attempt in the run: 1, and one more each time an operator retries it from here. Part
    # of its tasks' idempotency key (run:step:index:attempt); the task's own attempts count its retries.
    attempt = models.PositiveIntegerField(default=0)
    # The task of the current attempt (task and map item steps). Its agent is the task's.
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False, related_name="+"
    )
    input = models.JSONField(null=True, blank=True)  # resolved when the step became ready
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # The join counter: parents not yet ended. Decremented by a guarded UPDATE ... RETURNING as each
    # parent ends, under the run's lock; the step is decided when it reaches 0.
    remaining_parents = models.PositiveIntegerField(default=0)
    # A map step: its items, those not yet ended, and the next item to start (max_concurrency).
    items_total = models.PositiveIntegerField(default=0)
    remaining_items = models.PositiveIntegerField(default=0)
    # An approval: when the default decision applies, and who decided.
    due_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id", "map_index"], name="wfstep_run_step_index"),
        ]
        indexes = [
            # The approval sweep: approvals past their due time.
            models.Index(
                fields=["due_at"],
                name="wfstep_approval_due",
                condition=models.Q(status=StepStatus.AWAITING_APPROVAL),
            ),
        ]

    def __str__(self):
        index = "" if self.map_index == WHOLE_STEP else f"[{self.map_index}]"
        return f"{self.step_id}{index} ({self.status})"

    @property
    def is_terminal(self):
        return self.status in STEP_TERMINAL


class WorkflowEvent(models.Model):
    """Every status change of a run or one of its steps leaves a row (and an outbox event)."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(  # indexed by wfevent_run, which leads with it
        WorkflowRun, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    step_id = models.CharField(max_length=100, blank=True)  # blank: the run itself
    map_index = models.IntegerField(default=WHOLE_STEP)
    status = models.CharField(max_length=20)
    attempt = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["run", "id"], name="wfevent_run")]

    def __str__(self):
        return f"{self.run_id} {self.step_id or 'run'} {self.status}"
