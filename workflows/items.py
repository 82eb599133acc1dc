"""Reading a map step's items: counted by status for the run's detail, listed page by page on their own.

A map may have 10,000 items, each a step row of its own (map_index 0, 1, ...). The run's detail
(`GET /api/v1/workflow-runs/{run_id}`) shows the whole steps only, each map step with its items
counted by status; the items themselves are read from
`GET /api/v1/workflow-runs/{run_id}/steps/{step_id}/items`, a page at a time.
"""

from django.db.models import Count

from orchestrator_project.errors import InvalidInput, NotFound

from .models import WHOLE_STEP, StepKind, StepRun, WorkflowRun


def summaries(*, run_id):
    """{step_id: {"total": n, "by_status": {status: n}}} of every map step of the run that has items.

    One grouped query for the whole run, whatever its number of map steps (it reads the
    (run, step_id, map_index) index). Statuses that no item has are left out."""
    found = {}
    counted = (
        StepRun.objects.filter(run_id=run_id, map_index__gte=0)
        .values_list("step_id", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    for step_id, status, count in counted:
        summary = found.setdefault(step_id, {"total": 0, "by_status": {}})
        summary["total"] += count
        summary["by_status"][status] = count
    return found


def map_step(*, run_id, step_id):
    """The whole step `step_id` of the run, which must be a map step. NotFound for an unknown run or
    step; InvalidInput (a field error on step_id) for a step of another kind, which has no items."""
    if not WorkflowRun.objects.filter(run_id=run_id).exists():
        raise NotFound(f"No workflow run {run_id}.")
    step = StepRun.objects.filter(run_id=run_id, step_id=step_id, map_index=WHOLE_STEP).first()
    if step is None:
        raise NotFound(f"The run has no step {step_id!r}.")
    if step.kind != StepKind.MAP:
        raise InvalidInput(
            {"step_id": [f"Step {step_id!r} is a {step.kind} step; only a map step has items."]}
        )
    return step


def map_items(*, run_id, step_id):
    """The items of a map step, with their tasks (for the agent and the task's attempts)."""
    step = map_step(run_id=run_id, step_id=step_id)
    return StepRun.objects.filter(run_id=run_id, step_id=step.step_id, map_index__gte=0).select_related(
        "task"
    )
