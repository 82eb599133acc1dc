"""Condition, approval and sub-workflow steps, and the triggers that decide what runs after a skip."""

from datetime import timedelta

import time_machine
from django.utils import timezone

from workflows import advancing
from workflows.models import StepRun, WorkflowRun

from .helpers import RUNS, run_settles, start, step_settles, steps


def echo(call):
    return 200, {"result": {"type": call.body["type"], "input": call.body["input_data"]}}


def scored(call):
    if call.body["type"] == "score":
        return 200, {"result": {"score": call.body["input_data"]["score"]}}
    return echo(call)


BRANCHES = [
    {"id": "score", "task_type": "score", "input": {"score": {"$path": "$.input.score"}}},
    {
        "id": "good",
        "type": "condition",
        "depends_on": ["score"],
        "when": {"path": "$.steps.score.output.score", "op": "gte", "value": 0.8},
    },
    {"id": "publish", "depends_on": ["good"], "task_type": "publish"},
    {"id": "announce", "depends_on": ["publish"], "task_type": "announce"},
    {"id": "cleanup", "depends_on": ["announce"], "task_type": "cleanup", "trigger": "all_done"},
    {"id": "report", "depends_on": ["announce"], "task_type": "report", "trigger": "none_failed"},
]
CAPABILITIES = ["score", "publish", "announce", "cleanup", "report", "write", "plan"]


def test_a_true_condition_lets_its_branch_run(worker, operator_client, fake_agents, register, define):
    register(fake_agents(scored), capabilities=CAPABILITIES)
    define("branches", BRANCHES)
    run_id = start(operator_client, "branches", {"score": 0.9})
    run_settles(run_id, "completed")
    assert set(steps(run_id).values()) == {"completed"}
    assert StepRun.objects.get(run_id=run_id, step_id="good").output == {"result": True}


def test_a_false_condition_skips_downstream_unless_a_step_runs_on_all_done_or_none_failed(
    worker, operator_client, fake_agents, register, define
):
    fake = fake_agents(scored)
    register(fake, capabilities=CAPABILITIES)
    define("branches", BRANCHES)
    run_id = start(operator_client, "branches", {"score": 0.1})
    run = run_settles(run_id, "completed", "failed")
    assert steps(run_id) == {
        "score": "completed",
        "good": "skipped",
        "publish": "skipped",
        "announce": "skipped",
        "cleanup": "completed",
        "report": "completed",
    }
    assert run.status == "completed"
    assert sorted(c.body["type"] for c in fake.calls) == ["cleanup", "report", "score"]


def test_a_condition_on_a_path_that_does_not_resolve_fails_clearly(
    worker, operator_client, fake_agents, register, define
):
    register(fake_agents(echo), capabilities=CAPABILITIES)
    define("branches", BRANCHES)
    run_id = start(operator_client, "branches", {"score": 0.9})
    run_settles(run_id, "failed")
    good = StepRun.objects.get(run_id=run_id, step_id="good")
    assert good.status == "failed" and "no key 'score'" in good.error["message"]
    assert steps(run_id)["report"] == "upstream_failed" and steps(run_id)["cleanup"] == "completed"


APPROVAL = [
    {"id": "draft", "task_type": "write"},
    {
        "id": "review",
        "type": "approval",
        "depends_on": ["draft"],
        "timeout_seconds": 600,
        "input": {"draft": {"$path": "$.steps.draft.output"}},
    },
    {
        "id": "publish",
        "depends_on": ["review"],
        "task_type": "publish",
        "input": {"by": {"$path": "$.steps.review.output.by"}},
    },
]


def test_an_approval_waits_for_an_operator_then_the_run_goes_on(
    worker, operator_client, viewer_client, fake_agents, register, define
):
    fake = fake_agents(echo)
    register(fake, capabilities=CAPABILITIES)
    define("approved", APPROVAL)
    run_id = start(operator_client, "approved")
    review = step_settles(run_id, "review", "awaiting_approval")
    assert review.input == {"draft": {"type": "write", "input": {}}}
    assert review.due_at is not None
    url = f"{RUNS}/{run_id}/steps/review/approve"
    assert viewer_client.post(url, {}, format="json").status_code == 403
    assert operator_client.post(url, {"comment": "fine"}, format="json").status_code == 200
    run_settles(run_id, "completed")
    assert StepRun.objects.get(run_id=run_id, step_id="review").due_at is None  # decided: nothing is due
    assert [c for c in fake.calls if c.body["type"] == "publish"][0].body["input_data"] == {
        "by": "olivia-operator"
    }
    # Decided once: a second decision is an illegal state change.
    assert operator_client.post(url, {}, format="json").status_code == 409


def test_a_rejection_fails_the_step_and_the_run(worker, operator_client, fake_agents, register, define):
    register(fake_agents(echo), capabilities=CAPABILITIES)
    define("approved", APPROVAL)
    run_id = start(operator_client, "approved")
    step_settles(run_id, "review", "awaiting_approval")
    response = operator_client.post(f"{RUNS}/{run_id}/steps/review/reject", {"comment": "no"}, format="json")
    assert response.status_code == 200
    run_settles(run_id, "failed")
    assert steps(run_id) == {"draft": "completed", "review": "failed", "publish": "upstream_failed"}


def test_an_approval_past_its_timeout_takes_its_default_decision(
    worker, operator_client, fake_agents, register, define
):
    register(fake_agents(echo), capabilities=CAPABILITIES)
    define("approved", APPROVAL)
    run_id = start(operator_client, "approved")
    step_settles(run_id, "review", "awaiting_approval")
    assert advancing.expire_approvals() == 0  # not due yet
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        assert advancing.expire_approvals() == 1
    run_settles(run_id, "failed")
    review = StepRun.objects.get(run_id=run_id, step_id="review")
    assert review.status == "failed" and review.decided_by == "timeout" and review.due_at is None
    # Retried from the approval, it waits again with a new due time; cancelled, nothing is due.
    assert operator_client.post(f"{RUNS}/{run_id}/steps/review/retry", {}, format="json").status_code == 200
    assert step_settles(run_id, "review", "awaiting_approval").due_at is not None
    assert operator_client.post(f"{RUNS}/{run_id}/cancel").status_code == 200
    run_settles(run_id, "cancelled")
    review = StepRun.objects.get(run_id=run_id, step_id="review")
    assert review.status == "cancelled" and review.due_at is None


def test_deciding_an_unknown_step_or_run_is_404(operator_client, define):
    define("approved", APPROVAL)
    run_id = start(operator_client, "approved")
    assert operator_client.post(f"{RUNS}/{run_id}/steps/ghost/approve", {}, format="json").status_code == 404
    missing = "00000000-0000-0000-0000-000000000000"
    assert (
        operator_client.post(f"{RUNS}/{missing}/steps/review/approve", {}, format="json").status_code == 404
    )
    # draft is a task step, not an approval.
    assert operator_client.post(f"{RUNS}/{run_id}/steps/draft/approve", {}, format="json").status_code == 409


def test_a_sub_workflow_runs_the_pinned_version_and_its_output_is_the_steps_output(
    worker, operator_client, fake_agents, register, define
):
    fake = fake_agents(echo)
    register(fake, capabilities=CAPABILITIES)
    child = define(
        "child",
        [{"id": "w", "task_type": "write", "input": {"n": {"$path": "$.input.n"}}}],
        output={"wrote": {"$path": "$.steps.w.output.input.n"}},
    )
    define("child", [{"id": "w", "task_type": "plan"}])  # version 2: not the pinned one
    define(
        "parent",
        [
            {
                "id": "sub",
                "type": "workflow",
                "workflow": "child",
                "version": child["version"],
                "input": {"n": {"$path": "$.input.n"}},
            },
            {
                "id": "after",
                "depends_on": ["sub"],
                "task_type": "publish",
                "input": {"got": {"$path": "$.steps.sub.output"}},
            },
        ],
    )
    run_id = start(operator_client, "parent", {"n": 7})
    run_settles(run_id, "completed", "failed")
    assert steps(run_id) == {"sub": "completed", "after": "completed"}
    assert StepRun.objects.get(run_id=run_id, step_id="sub").output == {"wrote": 7}
    child_run = WorkflowRun.objects.get(parent_step__run_id=run_id)
    assert child_run.status == "completed" and child_run.definition.version == 1
    assert operator_client.get(f"{RUNS}/{child_run.run_id}").json()["parent_run_id"] == run_id
    assert [c.body["type"] for c in fake.calls] == ["write", "publish"]


def test_a_later_version_of_the_child_does_not_change_what_a_parent_without_a_version_runs(
    worker, operator_client, fake_agents, register, define
):
    fake = fake_agents(echo)
    register(fake, capabilities=CAPABILITIES)
    define("child", [{"id": "w", "task_type": "write"}])
    parent = define("parent", [{"id": "sub", "type": "workflow", "workflow": "child"}])
    assert parent["spec"]["steps"][0]["version"] == 1
    define("child", [{"id": "w", "task_type": "plan"}])  # version 2, after the parent was defined
    run_id = start(operator_client, "parent")
    run_settles(run_id, "completed", "failed")
    child_run = WorkflowRun.objects.get(parent_step__run_id=run_id)
    assert child_run.status == "completed" and child_run.definition.version == 1
    assert [c.body["type"] for c in fake.calls] == ["write"]


def test_a_failed_sub_workflow_fails_its_step(worker, operator_client, fake_agents, register, define):
    register(fake_agents(lambda call: (400, {"error": "no"})), capabilities=CAPABILITIES)
    define("child", [{"id": "w", "task_type": "write"}])
    define("parent", [{"id": "sub", "type": "workflow", "workflow": "child", "version": 1}])
    run_id = start(operator_client, "parent")
    run_settles(run_id, "failed")
    sub = StepRun.objects.get(run_id=run_id, step_id="sub")
    assert sub.status == "failed" and sub.error["message"] == "the sub-workflow run failed"
