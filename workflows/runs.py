"""Workflow runs: start, cancel, pause, resume, retry from a step, decide an approval.

Each verb locks the run's row, changes it through an engine.Advance, and commits in one transaction;
an illegal change is a Conflict (409), an unknown run or step NotFound (404). These are what the API
views and the admin's actions call.
"""

import hashlib
import json
import logging

from django.db import IntegrityError, OperationalError, transaction

from orchestrator_project.errors import Conflict, InvalidInput, NotFound
from tasks import services as task_services

from . import definitions, engine
from .models import RUN_TERMINAL, RunStatus, StepKind, StepRun, StepStatus, WorkflowRun

logger = logging.getLogger(__name__)


class IdempotencyConflict(Conflict):
    default_message = "This Idempotency-Key was already used with a different request body."


def _fingerprint(data):
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def start_run(*, workflow, version=None, input=None, priority=5, user=None, idempotency_key=None):
    """Start a run of `workflow` (its `version`, default the latest, pinned for the run's life) with
    `input`; the root steps' tasks are created in the same transaction. Returns (run, created): a
    repeated Idempotency-Key returns the first run (IdempotencyConflict if the body differs)."""
    input = {} if input is None else input
    fingerprint = ""
    request = {"workflow": workflow, "input": input, "priority": priority}
    if idempotency_key:
        # The version is compared on its own (_replay): no version means "the latest", which the first
        # request pinned, so the same start with that version written out is the same request.
        fingerprint = _fingerprint(request)
        existing = _keyed_run(idempotency_key)
        if existing is not None:
            return _replay(existing, request, version), False
    definition = definitions.get_definition(name=workflow, version=version)
    try:
        with transaction.atomic():
            run = engine.begin_run(
                definition=definition,
                input=input,
                priority=priority,
                user=user,
                idempotency_key=idempotency_key or None,
                fingerprint=fingerprint,
            )
    except IntegrityError:
        existing = _keyed_run(idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, request, version), False
    # The run as its start left it, in memory: the Advance wrote every change it made to it.
    return run, True


def _keyed_run(idempotency_key):
    return WorkflowRun.objects.select_related("definition").filter(idempotency_key=idempotency_key).first()


def _replay(existing, request, version):
    # Runs started before the version was left out of the fingerprint kept it in theirs, as asked (None
    # for "the latest") or written out: their keys replay across the upgrade too.
    accepted = {
        _fingerprint(request),
        _fingerprint({**request, "version": None}),
        _fingerprint({**request, "version": existing.definition.version}),
    }
    if existing.request_fingerprint not in accepted:
        raise IdempotencyConflict()
    if version is not None and existing.definition.version != version:
        raise IdempotencyConflict(
            f"This Idempotency-Key started a run of version {existing.definition.version}, not {version}."
        )
    return existing


def _reload(run_id):
    return WorkflowRun.objects.select_related("definition", "parent_step").get(run_id=run_id)


def cancel_run(*, run_id):
    """Cancel a run. Steps not started are cancelled at once; the tasks of running steps are cancelled
    through the tasks service (each in its own transaction, after this one commits) and the run becomes
    `cancelled` when the last of them has ended. 409 if the run already ended or is being cancelled."""
    with transaction.atomic():
        advance = engine.Advance.lock(run_id)
        run = advance.run
        if run.status in RUN_TERMINAL or run.status == RunStatus.CANCELLING:
            raise Conflict(f"The run is {run.status}; only running or paused runs can be cancelled.")
        advance.set_run("cancelled by an operator", status=RunStatus.CANCELLING)
        reason = "the run is being cancelled"
        task_ids, child_runs = [], []
        for step in advance.steps.values():
            if step.status in (StepStatus.WAITING, StepStatus.AWAITING_APPROVAL):
                advance.touch(step, reason, status=StepStatus.CANCELLED, finished_at=advance.now, due_at=None)
            elif step.status == StepStatus.RUNNING and step.kind == StepKind.TASK and step.task_id:
                task_ids.append(step.task_id)
            elif step.status == StepStatus.RUNNING and step.kind == StepKind.WORKFLOW:
                child_runs += list(
                    WorkflowRun.objects.filter(parent_step_id=step.pk).values_list("run_id", flat=True)
                )
        for step in [
            s for s in advance.steps.values() if s.kind == StepKind.MAP and s.status == StepStatus.RUNNING
        ]:
            task_ids += list(
                StepRun.objects.filter(
                    run_id=run.run_id, step_id=step.step_id, map_index__gte=0, status=StepStatus.RUNNING
                ).values_list("task_id", flat=True)
            )
            advance.cancel_waiting_items(step, reason)
        advance.after_commit.append(lambda: _cancel_tasks(task_ids))
        advance.after_commit.append(lambda: _cancel_children(child_runs))
        advance.commit()
    return _reload(run_id)


def _cancel_tasks(task_ids):
    """Cancel the tasks of a cancelled run's running steps, each in a transaction of its own (its end
    advances the run). Runs after the run's commit; a failure is logged, never raised: the run stays
    `cancelling` until that task ends by itself (its timeout, lease or deadline)."""
    for task_id in task_ids:
        for attempt in range(1, _CANCEL_ATTEMPTS + 1):
            try:
                task_services.cancel_task(task_id=task_id, reason="its workflow run was cancelled")
            except (Conflict, NotFound):
                pass  # it ended meanwhile: its end advanced the run
            except OperationalError:
                # A deadlock with the writer applying this task's outcome (it locks the agent, then the
                # task; a cancel the task, then the agent): one of the two gives way, try again.
                if attempt < _CANCEL_ATTEMPTS:
                    continue
                logger.exception("could not cancel task %s of a cancelled workflow run", task_id)
            break


_CANCEL_ATTEMPTS = 3


def _cancel_children(run_ids):
    for child in run_ids:
        try:
            cancel_run(run_id=child)
        except (Conflict, NotFound):
            pass


def _switch(run_id, *, source, target, verb):
    """Lock the run and move it from `source` to `target` (409 otherwise); returns the Advance."""
    advance = engine.Advance.lock(run_id)
    if advance.run.status != source:
        raise Conflict(f"The run is {advance.run.status}; only {source} runs can be {verb}.")
    advance.set_run(f"{verb} by an operator", status=target)
    return advance


def pause_run(*, run_id):
    """Stop scheduling new steps (and map items); running ones finish. 409 unless running."""
    with transaction.atomic():
        _switch(run_id, source=RunStatus.RUNNING, target=RunStatus.PAUSED, verb="paused").commit()
    return _reload(run_id)


def resume_run(*, run_id):
    """Resume a paused run: the steps that became ready meanwhile start now. 409 unless paused."""
    with transaction.atomic():
        advance = _switch(run_id, source=RunStatus.PAUSED, target=RunStatus.RUNNING, verb="resumed")
        for step in list(advance.steps.values()):
            if step.status == StepStatus.WAITING and step.remaining_parents == 0:
                advance.decide(step)
            elif step.status == StepStatus.RUNNING and step.kind == StepKind.MAP:
                advance.launch_waiting_items(step)
        advance.commit()
    return _reload(run_id)


def _descendants(children, step_id):
    found, stack = set(), [step_id]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _reset(advance, step, reason, **fields):
    """Back to waiting, as if never run: its attempt number stays, and grows when it starts again."""
    advance.touch(
        step,
        reason,
        status=StepStatus.WAITING,
        output=None,
        error=None,
        started_at=None,
        finished_at=None,
        task_id=None,
        due_at=None,  # an approval's is set again when it starts again
        **fields,
    )


# A run's reason when an operator retries it from a step (monitoring counts these as `retried`).
RETRIED_FROM_STEP = "retried from step"
# What an operator's step retry may take up again: a step, or a map's item, that failed or was cancelled.
RETRYABLE = (StepStatus.FAILED, StepStatus.CANCELLED)


def _items_to_retry(run, step, *, map_index, failed_items):
    """The map items a step retry is for: none (the whole step), one, or every failed one."""
    if map_index is None and not failed_items:
        return []
    field = "map_index" if map_index is not None else "failed_items"
    if map_index is not None and failed_items:
        raise InvalidInput({"failed_items": ["Give map_index or failed_items, not both."]})
    if step.kind != StepKind.MAP:
        raise InvalidInput({field: [f"Step {step.step_id!r} is not a map step."]})
    found = StepRun.objects.filter(run_id=run.run_id, step_id=step.step_id)
    if failed_items:
        items = list(found.filter(map_index__gte=0, status__in=RETRYABLE).order_by("map_index"))
        if not items:
            raise Conflict(f"Step {step.step_id!r} has no failed or cancelled items; retry the whole step.")
        return items
    item = found.filter(map_index=map_index).first()
    if item is None:
        raise NotFound(f"Step {step.step_id!r} has no item {map_index}.")
    if item.status not in RETRYABLE:
        raise Conflict(
            f"Item {map_index} of {step.step_id!r} is {item.status}; only failed items can be retried."
        )
    return [item]


def retry_step(*, run_id, step_id, map_index=None, failed_items=False):
    """Run a failed run again from one failed step: that step (or, with `map_index`, only that failed
    item of a map step; with `failed_items`, every failed or cancelled item of it) and the steps
    downstream of it are reset and run again; every other step keeps its status and output, and the run
    keeps its pinned version. 409 unless the run failed and the step (or item) failed or was cancelled."""
    with transaction.atomic():
        advance = engine.Advance.lock(run_id)
        run = advance.run
        if run.status != RunStatus.FAILED:
            raise Conflict(f"The run is {run.status}; only failed runs can be retried from a step.")
        step = advance.steps.get(step_id)
        if step is None:
            raise NotFound(f"The run has no step {step_id!r}.")
        if step.status not in RETRYABLE:
            raise Conflict(
                f"Step {step_id!r} is {step.status}; only a failed or cancelled step can be retried."
            )
        items = _items_to_retry(run, step, map_index=map_index, failed_items=failed_items)
        downstream = _descendants(advance.children, step_id)
        reset = downstream | {step_id}
        advance.set_run(
            f"{RETRIED_FROM_STEP} {step_id}",
            status=RunStatus.RUNNING,
            finished_at=None,
            error=None,
            output=None,
        )
        reason = f"reset: the run is retried from {step_id}"
        for other_id in downstream:
            other = advance.steps[other_id]
            parents_reset = sum(1 for p in advance.specs[other_id]["depends_on"] if p in reset)
            _reset(
                advance,
                other,
                reason,
                remaining_parents=parents_reset,
            )
        if not items:
            _reset(
                advance,
                step,
                "retried by an operator",
                remaining_parents=0,
            )
            advance.save_steps()  # the joins below count against the reset rows
            advance.decide(step)
        else:
            which = f"item {items[0].map_index}" if len(items) == 1 else f"{len(items)} failed items"
            advance.touch(
                step,
                f"{which} retried by an operator",
                status=StepStatus.RUNNING,
                remaining_items=len(items),
                output=None,
                error=None,
                finished_at=None,
            )
            for item in items:
                _reset(
                    advance,
                    item,
                    "retried by an operator",
                )
            advance.launch_waiting_items(step)  # within the map's max_concurrency
        advance.commit()
    return _reload(run_id)


def decide_approval(*, run_id, step_id, approved, by, comment=""):
    """An operator's decision on an approval step: approve (the step completes, its output is the
    decision) or reject (it fails). 409 unless the step is awaiting approval."""
    with transaction.atomic():
        advance = engine.Advance.lock(run_id)
        step = advance.steps.get(step_id)
        if step is None:
            raise NotFound(f"The run has no step {step_id!r}.")
        if step.status != StepStatus.AWAITING_APPROVAL:
            raise Conflict(
                f"Step {step_id!r} is {step.status}; only a step awaiting approval can be decided."
            )
        advance.decide_approval(step, approved=approved, by=by, comment=comment)
        advance.commit()
    return _reload(run_id)
