"""How runs advance without an API call: a step's task ended (the hook from tasks), an approval's
timeout passed (the beat's sweep)."""

import logging
from collections import defaultdict

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from .engine import Advance, settle_all, write_all
from .maps import error_doc
from .models import RunStatus, StepRun, StepStatus

logger = logging.getLogger(__name__)


def on_step_tasks_ended(ended, **_):
    """tasks.signals.step_tasks_ended: advance the runs of the steps whose tasks ended, in the same
    transaction as the tasks' move.

    All the batch's runs advance together (their locks, steps, joins' reads, new tasks, step rows and
    events in a few statements for the whole batch, not a dozen per run). Should that fail for a
    reason other than the database's, it is undone and each run advances alone, so that one run's
    trouble stays that run's."""
    by_step = {e.step_run_id: e for e in ended}
    now = timezone.now()
    try:
        with transaction.atomic():
            advances = Advance.lock_many_of_steps(list(by_step), now=now)
            _apply_ended(advances, by_step)
            settle_all(advances)
            write_all(advances)
        return
    except (OperationalError, InterfaceError):
        raise  # the database's trouble (a deadlock, a lost connection): the whole move is retried
    except Exception:
        logger.exception("advancing workflow runs together failed; advancing each alone")
    run_ids = StepRun.objects.filter(pk__in=by_step).values_list("run_id", flat=True).distinct()
    for run_id in sorted(run_ids):
        try:
            with transaction.atomic():  # a savepoint: one run's trouble stays that run's
                advances = Advance.lock_many([run_id], now=now)
                _apply_ended(advances, by_step)
                for advance in advances:
                    advance.commit()
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            # A bug must not fail the tasks' move: the task outcome would be lost and retried for ever,
            # the sweep with it. The run is failed instead, visibly, and can be retried from a step.
            logger.exception("advancing workflow run %s failed", run_id)
            _fail_run_for_engineerror(run_id, now, exc)


def _apply_ended(advances, by_step):
    """The ended tasks of the advances' runs (`by_step`: by their step rows' ids): each one's step
    (read after the lock, so current) told, when the task is the step's current one while the step
    runs; a superseded task or a duplicate ends without effect. Step rows that are not a run's whole
    steps are map items, read here."""
    whole = {step.pk for advance in advances for step in advance.steps.values()}
    item_ids = [pk for pk in by_step if pk not in whole]
    items = defaultdict(list)
    if item_ids:
        for item in StepRun.objects.filter(pk__in=item_ids).defer("input", "output"):
            items[item.run_id].append(item)
    for advance in advances:
        found = [s for s in advance.steps.values() if s.pk in by_step] + items[advance.run.run_id]
        for step in found:
            ended_task = by_step[step.pk]
            if step.status == StepStatus.RUNNING and step.task_id == ended_task.task_id:
                advance.task_ended(step, ended_task)


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
