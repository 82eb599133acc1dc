"""Run verbs: cancel (terminal only once every step attempt has ended), pause/resume, retry from a
failed step (per map item too), idempotent starts, roles and illegal state changes."""

import threading

from django.db import connection

from tasks import services as task_services
from tasks.models import Task
from workflows import engine, runs
from workflows.models import StepRun, WorkflowRun

from .helpers import RUNS, run_settles, start, step_settles, steps
from .test_map_steps import fan_out, items_then_square

CHAIN = [
    {"id": "a", "task_type": "work"},
    {"id": "b", "depends_on": ["a"], "task_type": "work"},
    {"id": "c", "depends_on": ["b"], "task_type": "work"},
]


def blocking(release):
    def behave(call):
        return lambda: (release.wait(20), (200, {"result": {"step": call.headers["idempotency-key"]}}))[1]

    return behave


def test_cancel_during_a_map_cancels_waiting_items_and_ends_after_the_running_ones(
    worker, operator_client, fake_agents, register, define
):
    release = threading.Event()

    def behave(call):
        if call.body["type"] == "square":
            return blocking(release)(call)
        return items_then_square(50)(call)

    fake = fake_agents(behave)
    register(fake, capabilities=["plan", "square", "sum"], max_concurrency=20)
    define("squares", fan_out(max_concurrency=5))
    run_id = start(operator_client, "squares")
    fake.wait_for_calls(6)  # plan, then the first five items in flight
    response = operator_client.post(f"{RUNS}/{run_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] in ("cancelling", "cancelled")
    run = run_settles(run_id, "cancelled")
    release.set()
    items = StepRun.objects.filter(run_id=run_id, step_id="square", map_index__gte=0)
    assert set(items.values_list("status", flat=True)) == {"cancelled"}
    # No item beyond the first five ever started, and every started task ended.
    assert items.exclude(task_id=None).count() == 5
    assert not Task.objects.filter(
        workflow_step_id__in=items.values("id"), status__in=["pending", "assigned", "running"]
    )
    assert steps(run_id) == {"plan": "completed", "square": "cancelled", "sum": "cancelled"}
    assert run.finished_at is not None
    assert operator_client.post(f"{RUNS}/{run_id}/cancel").status_code == 409


def test_a_cancelled_run_stays_cancelling_while_a_step_attempt_is_still_in_flight(
    worker, operator_client, fake_agents, register, define, settings
):
    release = threading.Event()
    fake = fake_agents(blocking(release))
    register(fake, capabilities=["work"])
    define("chain", CHAIN)
    run_id = start(operator_client, "chain")
    fake.wait_for_calls(1)
    # The task is in flight: cancelling it through the tasks service ends the attempt, then the run.
    operator_client.post(f"{RUNS}/{run_id}/cancel")
    run = run_settles(run_id, "cancelled")
    assert steps(run_id) == {"a": "cancelled", "b": "cancelled", "c": "cancelled"}
    release.set()
    assert run.status == "cancelled"


def test_pause_stops_scheduling_and_resume_goes_on(worker, operator_client, fake_agents, register, define):
    release = threading.Event()
    fake = fake_agents(blocking(release))
    register(fake, capabilities=["work"])
    define("chain", CHAIN)
    run_id = start(operator_client, "chain")
    fake.wait_for_calls(1)
    assert operator_client.post(f"{RUNS}/{run_id}/pause").json()["status"] == "paused"
    assert operator_client.post(f"{RUNS}/{run_id}/pause").status_code == 409
    release.set()
    step_settles(run_id, "a", "completed")  # the running step finishes
    assert steps(run_id)["b"] == "waiting" and len(fake.calls) == 1  # but nothing new starts
    assert operator_client.post(f"{RUNS}/{run_id}/resume").json()["status"] == "running"
    run_settles(run_id, "completed")
    assert len(fake.calls) == 3
    assert operator_client.post(f"{RUNS}/{run_id}/resume").status_code == 409


def test_retry_from_a_failed_step_reruns_it_and_its_downstream_only(
    worker, operator_client, fake_agents, register, define
):
    broken = threading.Event()
    broken.set()

    def behave(call):
        step = call.headers["idempotency-key"].split(":")[1]
        if step == "b" and broken.is_set():
            return 400, {"error": "b is broken"}
        return 200, {"result": {"step": step}}

    fake = fake_agents(behave)
    register(fake, capabilities=["work"])
    define("chain", CHAIN)
    run_id = start(operator_client, "chain")
    run_settles(run_id, "failed")
    assert steps(run_id) == {"a": "completed", "b": "failed", "c": "upstream_failed"}
    assert operator_client.post(f"{RUNS}/{run_id}/steps/a/retry", {}, format="json").status_code == 409
    broken.clear()
    # The step's task is not retried on its own: its outcome would advance nothing (the step has failed).
    b_task = StepRun.objects.get(run_id=run_id, step_id="b").task_id
    refused = operator_client.post(f"/api/v1/tasks/{b_task}/retry")
    assert refused.status_code == 409 and "retry the step instead" in refused.json()["detail"]
    assert Task.objects.get(pk=b_task).status == "failed" and len(fake.calls) == 2
    response = operator_client.post(f"{RUNS}/{run_id}/steps/b/retry", {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "running"
    run_settles(run_id, "completed")
    keys = [c.headers["idempotency-key"].split(":", 1)[1] for c in fake.calls]
    # a ran once (its output kept), b twice (attempt 2 has its own key), c once.
    assert keys == ["a:0:1", "b:0:1", "b:0:2", "c:0:1"]
    assert StepRun.objects.get(run_id=run_id, step_id="b").attempt == 2


def squares_failing_at(failing, operator_client, fake_agents, register, define):
    """A run of the squares map whose items `failing` fail until `broken` is cleared; it has failed."""
    broken = threading.Event()
    broken.set()

    def behave(call):
        if call.body["type"] == "square" and call.body["input_data"]["n"] in failing and broken.is_set():
            return 400, {"error": "broken"}
        return items_then_square(4)(call)

    fake = fake_agents(behave)
    register(fake, capabilities=["plan", "square", "sum"])
    define("squares", fan_out())
    run_id = start(operator_client, "squares")
    run_settles(run_id, "failed")
    return fake, broken, run_id


def test_retry_of_one_failed_map_item_reruns_only_that_item(
    worker, operator_client, fake_agents, register, define
):
    fake, broken, run_id = squares_failing_at({2}, operator_client, fake_agents, register, define)
    assert (
        operator_client.post(
            f"{RUNS}/{run_id}/steps/square/retry", {"map_index": 1}, format="json"
        ).status_code
        == 409
    )
    broken.clear()
    response = operator_client.post(f"{RUNS}/{run_id}/steps/square/retry", {"map_index": 2}, format="json")
    assert response.status_code == 200, response.json()
    run_settles(run_id, "completed")
    squares = [c.body["input_data"]["n"] for c in fake.calls if c.body["type"] == "square"]
    assert sorted(squares) == [0, 1, 2, 2, 3]  # only item 2 ran again
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).output == [0, 1, 4, 9]
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=2).attempt == 2


def test_retry_of_every_failed_map_item_at_once_reruns_those_only(
    worker, operator_client, fake_agents, register, define
):
    fake, broken, run_id = squares_failing_at({1, 3}, operator_client, fake_agents, register, define)
    retry = f"{RUNS}/{run_id}/steps/square/retry"
    both = operator_client.post(retry, {"map_index": 1, "failed_items": True}, format="json")
    assert both.status_code == 400 and "failed_items" in both.json()
    broken.clear()

    response = operator_client.post(retry, {"failed_items": True}, format="json")

    assert response.status_code == 200, response.json()
    run_settles(run_id, "completed")
    squares = [c.body["input_data"]["n"] for c in fake.calls if c.body["type"] == "square"]
    assert sorted(squares) == [0, 1, 1, 2, 3, 3]  # items 1 and 3 ran again, together
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).output == [0, 1, 4, 9]
    attempts = dict(
        StepRun.objects.filter(run_id=run_id, step_id="square", map_index__gte=0).values_list(
            "map_index", "attempt"
        )
    )
    assert attempts == {0: 1, 1: 2, 2: 1, 3: 2}


def test_a_superseded_tasks_end_advances_nothing(worker, operator_client, fake_agents, register, define):
    fake = fake_agents(lambda call: (400, {"error": "no"}))
    register(fake, capabilities=["work"])
    define("chain", CHAIN)
    run_id = start(operator_client, "chain")
    run_settles(run_id, "failed")
    old_task = StepRun.objects.get(run_id=run_id, step_id="a").task_id
    release = threading.Event()
    fake.behaviour = blocking(release)  # the retried attempt stays in flight
    operator_client.post(f"{RUNS}/{run_id}/steps/a/retry", {}, format="json")
    fake.wait_for_calls(2)
    # The old attempt's task comes back to life and is cancelled: it is no longer the step's task. (The
    # tasks API refuses to retry a step's task; a row put back by hand stands for whatever else might.)
    Task.objects.filter(task_id=old_task).update(status="pending", finished_at=None)
    task_services.cancel_task(task_id=old_task)
    step = StepRun.objects.get(run_id=run_id, step_id="a")
    assert step.status == "running" and step.task_id != old_task
    assert WorkflowRun.objects.get(run_id=run_id).status == "running"
    operator_client.post(f"{RUNS}/{run_id}/cancel")
    run_settles(run_id, "cancelled")
    release.set()  # the held call ends, so the worker stops at once rather than after blocking's 20 s


def test_a_duplicate_report_advances_nothing(worker, operator_client, fake_agents, register, define):
    fake = fake_agents(lambda call: (202, {}))
    register(fake, capabilities=["work"])
    define("chain", CHAIN)
    run_id = start(operator_client, "chain")
    fake.wait_for_calls(1)
    task = step_settles(run_id, "a", "running").task
    url = f"/api/v1/tasks/{task.task_id}/result?attempt=1"
    first = operator_client.post(url, {"status": "completed", "result": {"n": 1}}, format="json")
    assert first.status_code == 200
    second = operator_client.post(url, {"status": "completed", "result": {"n": 2}}, format="json")
    assert second.status_code == 409
    fake.wait_for_calls(2)
    assert StepRun.objects.get(run_id=run_id, step_id="a").output == {"n": 1}
    assert StepRun.objects.get(run_id=run_id, step_id="b").attempt == 1
    assert (
        Task.objects.filter(workflow_step_id=StepRun.objects.get(run_id=run_id, step_id="b").pk).count() == 1
    )
    operator_client.post(f"{RUNS}/{run_id}/cancel")
    run_settles(run_id, "cancelled")


def test_a_repeated_idempotency_key_returns_the_same_run(operator_client, define):
    define("chain", CHAIN)
    body = {"workflow": "chain", "input": {"x": 1}}
    first = operator_client.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = operator_client.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["run_id"] == again.json()["run_id"]
    other = operator_client.post(RUNS, {**body, "input": {"x": 2}}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 409
    assert WorkflowRun.objects.count() == 1


def test_a_repeated_start_may_write_out_the_version_it_pinned_but_not_another(operator_client, define):
    define("chain", CHAIN)
    define("chain", CHAIN[:1])
    body = {"workflow": "chain", "input": {"x": 1}}
    first = operator_client.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201 and first.json()["version"] == 2
    # The latest (2) written out is the same request; version 1 is another.
    same = operator_client.post(RUNS, {**body, "version": 2}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert same.status_code == 200 and same.json()["run_id"] == first.json()["run_id"]
    other = operator_client.post(RUNS, {**body, "version": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 409
    assert "version 2, not 1" in other.json()["detail"]
    # And the other way round: a key first used with a version replays without one.
    pinned = operator_client.post(RUNS, {**body, "version": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    again = operator_client.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    assert pinned.status_code == 201 and again.status_code == 200
    assert again.json()["run_id"] == pinned.json()["run_id"] and again.json()["version"] == 1
    assert WorkflowRun.objects.count() == 2


def test_a_key_stored_before_the_version_left_the_fingerprint_still_replays(operator_client, define):
    define("chain", CHAIN)
    body = {"workflow": "chain", "input": {"x": 1}}
    run_id = operator_client.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="old").json()["run_id"]
    # As the code before stored it: the version as asked (none) in the fingerprint.
    legacy = runs._fingerprint({"workflow": "chain", "version": None, "input": {"x": 1}, "priority": 5})
    WorkflowRun.objects.filter(run_id=run_id).update(request_fingerprint=legacy)
    again = operator_client.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert again.status_code == 200 and again.json()["run_id"] == run_id
    other = operator_client.post(RUNS, {**body, "input": {"x": 2}}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert other.status_code == 409


def test_starting_pins_the_version_and_the_roots_tasks_exist_at_once(operator_client, define):
    define("chain", CHAIN)
    define("chain", CHAIN[:1])
    run = operator_client.post(RUNS, {"workflow": "chain", "version": 1}, format="json").json()
    assert run["version"] == 1 and run["status"] == "running"
    a = StepRun.objects.get(run_id=run["run_id"], step_id="a")
    assert a.status == "running" and Task.objects.get(task_id=a.task_id).workflow_step_id == a.pk
    assert operator_client.post(RUNS, {"workflow": "chain"}, format="json").json()["version"] == 2


def test_the_latest_version_is_read_at_each_start_though_definitions_are_cached(operator_client, define):
    define("chain", CHAIN)
    assert operator_client.post(RUNS, {"workflow": "chain"}, format="json").json()["version"] == 1
    define("chain", CHAIN[:1])  # after version 1 was read (and kept) by this process
    second = operator_client.post(RUNS, {"workflow": "chain"}, format="json").json()
    assert second["version"] == 2
    assert list(StepRun.objects.filter(run_id=second["run_id"]).values_list("step_id", flat=True)) == ["a"]
    pinned = operator_client.post(RUNS, {"workflow": "chain", "version": 1}, format="json").json()
    assert pinned["version"] == 1


def test_the_start_answers_with_the_run_as_stored_without_reading_it_back(operator_client, define):
    define("chain", CHAIN)
    # A run that ends while it starts: its one step is a condition, decided at once.
    define(
        "instant", [{"id": "c", "type": "condition", "when": {"path": "$.input.x", "op": "gte", "value": 1}}]
    )
    statements = []

    def record(execute, sql, *args):
        statements.append(sql)
        return execute(sql, *args)

    for workflow, status in (("chain", "running"), ("instant", "completed")):
        statements.clear()
        with connection.execute_wrapper(record):
            started = operator_client.post(RUNS, {"workflow": workflow, "input": {"x": 2}}, format="json")
        assert started.status_code == 201
        stored = operator_client.get(f"{RUNS}/{started.json()['run_id']}").json()
        assert started.json()["status"] == status
        assert started.json() == {key: stored[key] for key in started.json()}
        # The run is written, never read: the answer is the run in memory, as its start left it.
        reads = [sql for sql in statements if 'FROM "workflows_workflowrun"' in sql]
        assert not reads, reads


def test_bad_run_requests(operator_client, viewer_client, define):
    define("chain", CHAIN)
    assert operator_client.post(RUNS, {"workflow": "ghost"}, format="json").status_code == 404
    assert operator_client.post(RUNS, {"workflow": "chain", "version": 9}, format="json").status_code == 404
    assert operator_client.post(RUNS, {"workflow": "chain", "input": [1]}, format="json").status_code == 400
    assert operator_client.post(RUNS, {"workflow": "chain", "priority": 0}, format="json").status_code == 400
    assert viewer_client.post(RUNS, {"workflow": "chain"}, format="json").status_code == 403
    missing = "00000000-0000-0000-0000-000000000000"
    assert operator_client.get(f"{RUNS}/{missing}").status_code == 404
    assert operator_client.post(f"{RUNS}/{missing}/cancel").status_code == 404


def test_runs_are_listed_and_filtered(operator_client, viewer_client, define):
    define("chain", CHAIN)
    define("other", CHAIN[:1])
    first = start(operator_client, "chain")
    start(operator_client, "other")
    operator_client.post(f"{RUNS}/{first}/pause")
    listed = viewer_client.get(RUNS, {"workflow": "chain"}).json()["results"]
    assert [r["run_id"] for r in listed] == [first]
    paused = viewer_client.get(RUNS, {"status": "paused"}).json()["results"]
    assert [r["run_id"] for r in paused] == [first]
    assert viewer_client.get(RUNS, {"status": "bogus"}).status_code == 400


def test_cancelling_a_parent_cancels_its_sub_workflow_run_first(
    worker, operator_client, fake_agents, register, define
):
    release = threading.Event()
    fake = fake_agents(blocking(release))
    register(fake, capabilities=["work"])
    define("child", CHAIN[:1])
    define("parent", [{"id": "sub", "type": "workflow", "workflow": "child", "version": 1}])
    run_id = start(operator_client, "parent")
    fake.wait_for_calls(1)
    assert operator_client.post(f"{RUNS}/{run_id}/cancel").status_code == 200
    run_settles(run_id, "cancelled")
    release.set()
    child = WorkflowRun.objects.get(parent_step__run_id=run_id)
    assert child.status == "cancelled"
    assert steps(run_id) == {"sub": "cancelled"}


def test_an_engine_error_fails_the_run_but_never_the_tasks_move(
    worker, operator_client, fake_agents, register, define, monkeypatch
):
    def broken(self, step, ended):
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine.Advance, "task_ended", broken)
    register(fake_agents(lambda call: (200, {"result": {"ok": True}})), capabilities=["work"])
    define("chain", CHAIN)
    run_id = start(operator_client, "chain")
    run = run_settles(run_id, "failed")
    assert "the workflow engine failed: RuntimeError: a bug" in run.error["message"]
    task = Task.objects.get(task_id=StepRun.objects.get(run_id=run_id, step_id="a").task_id)
    assert task.status == "completed" and task.result == {"ok": True}
