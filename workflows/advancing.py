"""How runs advance without an API call: a step's task ended (the hook from tasks), an approval's
timeout passed (the beat's sweep)."""

import logging
from collections import defaultdict

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from .engine import Advance
from .maps import error_doc
from .models import WHOLE_STEP, RunStatus, StepRun, StepStatus

logger = logging.getLogger(__name__)


def on_step_tasks_ended(ended, **_):
    """tasks.signals.step_tasks_ended: advance the runs of the steps whose tasks ended, in the same
    transaction as the tasks' move. Runs are locked in run id order (two batches never deadlock)."""
    by_step = {e.step_run_id: e for e in ended}
    runs = defaultdict(list)
    rows = StepRun.objects.filter(pk__in=by_step).values_list("pk", "run_id", "step_id", "map_index")
    for pk, run_id, step_id, map_index in rows:
        runs[run_id].append((step_id, map_index, by_step[pk]))
    now = timezone.now()
    for run_id in sorted(runs):
        try:
            with transaction.atomic():  # a savepoint: one run's trouble stays that run's
                _advance_on_ended(run_id, runs[run_id], now)
        except (OperationalError, InterfaceError):
            raise  # the database's trouble (a deadlock, a lost connection): the whole move is retried
        except Exception as exc:
            # A bug must not fail the tasks' move: the task outcome would be lost and retried for ever,
            # the sweep with it. The run is failed instead, visibly, and can be retried from a step.
            logger.exception("advancing workflow run %s failed", run_id)
            _fail_run_for_engineerror(run_id, now, exc)


def _advance_on_ended(run_id, ended, now):
    advance = Advance.lock(run_id, now=now)
    # Read after the lock, so current: whole steps from the run's steps, map items by id.
    items = {e.step_run_id: e for _, map_index, e in ended if map_index != WHOLE_STEP}
    found = [advance.steps[step_id] for step_id, map_index, _ in ended if map_index == WHOLE_STEP]
    if items:
        found += StepRun.objects.filter(pk__in=items).defer("input", "output")
    fenced = {e.step_run_id: e for _, _, e in ended}
    for step in found:
        ended_task = fenced[step.pk]
        # Only the step's current task, while the step runs: a superseded task ends without effect.
        if step.status == StepStatus.RUNNING and step.task_id == ended_task.task_id:
            advance.task_ended(step, ended_task)
    advance.commit()


def _fail_run_for_engineerror(run_id, now, exc):
    with transaction.atomic():
        advance = Advance.lock(run_id, now=now)
        if advance.run.is_terminal:
            return
        reason = f"the workflow engine failed: {type(exc).__name__}: {exc}"[:500]
        advance.set_run(reason, status=RunStatus.FAILED, finished_at=now, error=error_doc(reason))
        advance.commit()


def expire_approvals(*, now=None):
    """Apply the default decision of approvals past their due time. Returns how many were decided."""
    now = now or timezone.now()
    due = list(
        StepRun.objects.filter(status=StepStatus.AWAITING_APPROVAL, due_at__lte=now)
        .order_by("run_id")
        .values_list("run_id", "step_id")[:500]
    )
    decided = 0
    for run_id, step_id in due:
        with transaction.atomic():
            advance = Advance.lock(run_id, now=now)
            step = advance.steps.get(step_id)
            if step is None or step.status != StepStatus.AWAITING_APPROVAL or step.due_at > now:
                continue
            approve = advance.specs[step_id]["on_timeout"] == "approve"
            advance.decide_approval(
                step, approved=approve, by="timeout", comment="no decision before the due time"
            )
            advance.commit()
            decided += 1
    return decided
