"""Helpers of the workflow tests: start runs through the API and wait for their states."""

from tests.tasks.conftest import wait_until
from workflows.models import StepRun, WorkflowRun

RUNS = "/api/v1/workflow-runs"


def start(client, workflow, input=None, **fields):
    response = client.post(RUNS, {"workflow": workflow, "input": input or {}, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["run_id"]


def run_settles(run_id, *statuses, timeout=30):
    return wait_until(
        lambda: WorkflowRun.objects.filter(run_id=run_id, status__in=statuses).first(),
        timeout=timeout,
        message=f"run {run_id} to become {statuses}",
    )


def step_settles(run_id, step_id, *statuses, map_index=-1, timeout=30):
    return wait_until(
        lambda: StepRun.objects.filter(
            run_id=run_id, step_id=step_id, map_index=map_index, status__in=statuses
        ).first(),
        timeout=timeout,
        message=f"step {step_id}[{map_index}] of run {run_id} to become {statuses}",
    )


def steps(run_id):
    """{step_id: status} of the run's whole steps."""
    return dict(StepRun.objects.filter(run_id=run_id, map_index=-1).values_list("step_id", "status"))
