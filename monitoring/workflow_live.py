"""Workflow runs, live: what the engine commits goes out on `/ws/workflow-runs/`, and what a client
(re)connecting starts from.

The engine announces a batch of runs' changes after its commit (`workflows.events.changes_committed`);
they are turned into the messages of `live.messages` and queued on the process's publisher like task
and agent changes: one channel-layer send per burst, whichever process committed. Items of a map step
are left out (a 1,000-item map would be 2,000 messages): the map step's own changes say how it goes,
and the run's page and the API have every item.
"""

from orchestrator_project.live import messages, publish_workflow_run_changes
from workflows import step_graph
from workflows.models import RUN_ACTIVE, RUN_TERMINAL, WHOLE_STEP, StepRun, WorkflowRun

# The snapshot: every active run up to this many, and the most recent ended ones.
SNAPSHOT_ACTIVE = 50
SNAPSHOT_RECENT = 10


def on_changes_committed(sender, changes, **kwargs):
    out = []
    for change in changes:
        payload, run_id = change.payload, change.run_id
        if not change.step_id:
            out.append(
                messages.workflow_run_change(
                    run_id=run_id,
                    workflow=payload["workflow"],
                    version=payload["version"],
                    status=change.status,
                    reason=change.reason,
                    at=payload["at"],
                )
            )
        elif change.map_index == WHOLE_STEP:
            out.append(
                messages.workflow_step_change(
                    run_id=run_id,
                    step_id=change.step_id,
                    kind=payload["kind"],
                    status=change.status,
                    attempt=change.attempt,
                    task_id=payload["task_id"],
                    reason=change.reason,
                    at=payload["at"],
                )
            )
    publish_workflow_run_changes(out)


def run_message(run, steps):
    """A run as the snapshot shows it: its status and its whole steps, each with its parents and the
    column it is drawn in (step_graph.depths), so that a client draws the graph as the admin does."""
    specs = run.definition.spec.get("steps", [])
    depths = step_graph.depths(specs)
    rows = {step.step_id: step for step in steps}
    return {
        "run_id": str(run.run_id),
        "workflow": run.definition.name,
        "version": run.definition.version,
        "status": run.status,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "steps": [
            {
                "step_id": spec["id"],
                "kind": spec.get("type", "task"),
                "status": rows[spec["id"]].status if spec["id"] in rows else "waiting",
                "attempt": rows[spec["id"]].attempt if spec["id"] in rows else 0,
                "depends_on": list(spec.get("depends_on") or []),
                "depth": depths[spec["id"]],
            }
            for spec in specs
        ],
    }


def run_snapshot(*, ids=None, statuses=None):
    """{"runs": [...]}: the active runs (newest first, bounded) then the most recent ended ones, or
    the runs named by `ids`. Three queries whatever the number of runs."""
    runs = WorkflowRun.objects.select_related("definition").order_by("-created_at")
    if ids:
        chosen = list(runs.filter(run_id__in=ids))
    else:
        chosen = list(runs.filter(status__in=RUN_ACTIVE)[:SNAPSHOT_ACTIVE]) + list(
            runs.filter(status__in=RUN_TERMINAL)[:SNAPSHOT_RECENT]
        )
    steps = {}
    for step in StepRun.objects.filter(run__in=chosen, map_index=WHOLE_STEP).only(
        "run_id", "step_id", "status", "attempt"
    ):
        steps.setdefault(step.run_id, []).append(step)
    return {"runs": [run_message(run, steps.get(run.run_id, [])) for run in chosen]}
