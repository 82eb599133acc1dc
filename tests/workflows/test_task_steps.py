"""Task steps with a real worker and loopback agents: data passing, idempotency keys, the run's end."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator_project.outbox.models import OutboxEvent
from tasks.models import Task
from tasks.signals import step_tasks_ended
from workflows.models import StepRun, WorkflowEvent

from .helpers import RUNS, run_settles, start, steps


def planner(call):
    if call.body["type"] == "plan":
        return 200, {"result": {"outline": ["intro", call.body["input_data"]["topic"]]}}
    return 200, {
        "result": {"text": f"{call.body['input_data']['title']}: {call.body['input_data']['outline']}"}
    }


CHAIN = [
    {"id": "plan", "task_type": "plan", "input": {"topic": {"$path": "$.input.topic"}}},
    {
        "id": "write",
        "depends_on": ["plan"],
        "task_type": "write",
        "input": {
            "outline": {"$path": "$.steps.plan.output.outline"},
            "title": {"$template": "On {{ $.input.topic }}"},
        },
    },
]


def test_a_chain_passes_data_and_the_run_completes_with_its_output(
    worker, operator_client, fake_agents, register, define
):
    fake = fake_agents(planner)
    register(fake, capabilities=["plan", "write"])
    define("report", CHAIN, output={"text": {"$path": "$.steps.write.output.text"}})
    run_id = start(operator_client, "report", {"topic": "tides"})
    run = run_settles(run_id, "completed", "failed")
    assert run.status == "completed", list(StepRun.objects.filter(run_id=run_id).values("step_id", "error"))
    assert run.output == {"text": "On tides: ['intro', 'tides']"}
    write_call = [c for c in fake.calls if c.body["type"] == "write"][0]
    assert write_call.body["input_data"] == {"outline": ["intro", "tides"], "title": "On tides"}
    # Each step's call carries the stable key run:step:index:attempt.
    assert sorted(c.headers["idempotency-key"] for c in fake.calls) == [
        f"{run_id}:plan:0:1",
        f"{run_id}:write:0:1",
    ]
    detail = operator_client.get(f"{RUNS}/{run_id}").json()
    by_id = {s["step_id"]: s for s in detail["steps"]}
    assert by_id["plan"]["status"] == "completed" and by_id["plan"]["attempt"] == 1
    assert by_id["plan"]["agent_id"] == str(
        Task.objects.get(task_id=by_id["plan"]["task_id"]).assigned_agent_id
    )
    assert by_id["write"]["output"] == {"text": "On tides: ['intro', 'tides']"}
    assert by_id["write"]["started_at"] and by_id["write"]["finished_at"]


def test_every_status_change_leaves_an_event_row_and_an_outbox_event(
    worker, operator_client, fake_agents, register, define
):
    register(fake_agents(planner), capabilities=["plan", "write"])
    define("report", CHAIN)
    run_id = start(operator_client, "report", {"topic": "tides"})
    run_settles(run_id, "completed")
    rows = list(WorkflowEvent.objects.filter(run_id=run_id).order_by("id").values_list("step_id", "status"))
    assert rows == [
        ("", "running"),
        ("plan", "running"),
        ("plan", "completed"),
        ("write", "running"),
        ("write", "completed"),
        ("", "completed"),
    ]
    published = OutboxEvent.objects.filter(aggregatetype="workflow_run", aggregateid=run_id).order_by(
        "sequence"
    )
    assert [e.sequence for e in published] == list(range(1, 7))
    assert [(e.payload.get("step_id", ""), e.payload["status"]) for e in published] == rows


def test_a_failed_resolution_fails_the_step_clearly_and_the_run(
    worker, operator_client, fake_agents, register, define
):
    register(fake_agents(lambda call: (200, {"result": {"nothing": 1}})), capabilities=["plan", "write"])
    define("report", CHAIN)
    run_id = start(operator_client, "report", {"topic": "tides"})
    run = run_settles(run_id, "completed", "failed")
    assert run.status == "failed"
    write = StepRun.objects.get(run_id=run_id, step_id="write")
    assert write.status == "failed" and write.task_id is None
    assert (
        "$.steps.plan.output.outline" in write.error["message"]
        and "no key 'outline'" in write.error["message"]
    )


def test_an_oversize_output_is_an_ordinary_step_failure(
    worker, operator_client, fake_agents, register, define, settings
):
    settings.WORKFLOW_OUTPUT_MAX_BYTES = 1000
    register(
        fake_agents(lambda call: (200, {"result": {"outline": ["x" * 2000]}})), capabilities=["plan", "write"]
    )
    define("report", CHAIN)
    run_id = start(operator_client, "report", {"topic": "tides"})
    run_settles(run_id, "failed")
    assert steps(run_id) == {"plan": "failed", "write": "upstream_failed"}
    assert "the limit is 1000" in StepRun.objects.get(run_id=run_id, step_id="plan").error["message"]


def test_a_failed_task_fails_its_step_and_downstream_steps_fail_upstream(
    worker, operator_client, fake_agents, register, define
):
    register(fake_agents(lambda call: (400, {"error": "bad plan"})), capabilities=["plan", "write"])
    define("report", CHAIN)
    run_id = start(operator_client, "report", {"topic": "tides"})
    run = run_settles(run_id, "failed")
    assert steps(run_id) == {"plan": "failed", "write": "upstream_failed"}
    assert run.error == {"message": "steps failed", "steps": ["plan", "write"]}
    assert StepRun.objects.get(run_id=run_id, step_id="plan").error["task_error"] == {
        "status_code": 400,
        "message": "bad plan",
    }


def test_a_task_outside_any_workflow_never_touches_the_workflow_tables(operator_client):
    told = []
    step_tasks_ended.connect(lambda **kwargs: told.append(kwargs), weak=False, dispatch_uid="test-told")
    try:
        with CaptureQueriesContext(connection) as queries:
            task_id = operator_client.post("/api/v1/tasks", {"type": "plain"}, format="json").json()[
                "task_id"
            ]
            assert operator_client.delete(f"/api/v1/tasks/{task_id}").status_code == 200
    finally:
        step_tasks_ended.disconnect(dispatch_uid="test-told")
    assert told == []
    assert [q["sql"] for q in queries.captured_queries if "workflows_" in q["sql"]] == []


def test_the_next_step_is_claimed_in_the_commit_that_completes_the_previous_one(
    worker, operator_client, fake_agents, register, define
):
    """The writer's own round claims a step's successor in the transaction that completed the step
    (no hop to the dispatcher's thread): the rows of both events carry that transaction's id."""
    register(fake_agents(planner), capabilities=["plan", "write"])
    define("report", CHAIN)
    run_id = start(operator_client, "report", {"topic": "tides"})
    assert run_settles(run_id, "completed", "failed").status == "completed"
    tasks = dict(StepRun.objects.filter(run_id=run_id).values_list("step_id", "task_id"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT task_id, kind, xmin::text FROM tasks_taskevent WHERE task_id = ANY(%s)",
            [list(tasks.values())],
        )
        xid = {(task_id, kind): x for task_id, kind, x in cursor.fetchall()}
    # (Not the successor's "created" event: the run advances in a savepoint, whose rows carry the
    # savepoint's own id.)
    assert xid[tasks["write"], "assigned"] == xid[tasks["plan"], "completed"]
