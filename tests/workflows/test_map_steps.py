"""Map steps: fan-out over a list from a path, max_concurrency, output in item order, per-item retries
(the join waits for a retried item), min_success_ratio, and a fan-out of 1,000 items."""

import threading

import pytest

from tasks.models import Task
from workflows.models import StepRun

from .helpers import run_settles, start, steps


@pytest.fixture
def fast_retries(settings):
    settings.TASK_RETRY_BACKOFF_BASE = 0.05
    settings.TASK_RETRY_BACKOFF_MAX = 0.2


def items_then_square(count):
    def behave(call):
        if call.body["type"] == "plan":
            return 200, {"result": {"items": list(range(count))}}
        if call.body["type"] == "sum":
            return 200, {"result": sum(x or 0 for x in call.body["input_data"]["all"])}
        return 200, {"result": call.body["input_data"]["n"] ** 2}

    return behave


def fan_out(**map_fields):
    return [
        {"id": "plan", "task_type": "plan"},
        {
            "id": "square",
            "type": "map",
            "depends_on": ["plan"],
            "task_type": "square",
            "over": {"$path": "$.steps.plan.output.items"},
            "input": {"n": {"$path": "$.item"}, "at": {"$path": "$.index"}},
            **map_fields,
        },
        {
            "id": "sum",
            "depends_on": ["square"],
            "task_type": "sum",
            "input": {"all": {"$path": "$.steps.square.output"}},
        },
    ]


def test_a_map_fans_out_with_bounded_concurrency_and_keeps_item_order(
    worker, operator_client, fake_agents, register, define
):
    lock, running, peak = threading.Lock(), [0], [0]
    release = threading.Event()

    def behave(call):
        if call.body["type"] != "square":
            return items_then_square(12)(call)

        def slow():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            release.wait(0.05)
            with lock:
                running[0] -= 1
            return 200, {"result": call.body["input_data"]["n"] ** 2}

        return slow

    fake = fake_agents(behave)
    register(fake, capabilities=["plan", "square", "sum"], max_concurrency=20)
    define("squares", fan_out(max_concurrency=3))
    run_id = start(operator_client, "squares")
    run_settles(run_id, "completed", "failed")
    assert steps(run_id) == {"plan": "completed", "square": "completed", "sum": "completed"}
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).output == [
        n * n for n in range(12)
    ]
    assert [c for c in fake.calls if c.body["type"] == "sum"][0].body["input_data"]["all"] == [
        n * n for n in range(12)
    ]
    assert 1 <= peak[0] <= 3
    keys = sorted(c.headers["idempotency-key"] for c in fake.calls if c.body["type"] == "square")
    assert keys == sorted(f"{run_id}:square:{i}:1" for i in range(12))


def test_a_map_item_that_fails_then_succeeds_on_retry_is_waited_for(
    worker, operator_client, fake_agents, register, define, fast_retries
):
    failed_once = threading.Event()
    sum_calls = []

    def behave(call):
        if call.body["type"] == "square" and call.body["input_data"]["n"] == 2 and not failed_once.is_set():
            failed_once.set()
            return 503, {"error": "busy"}
        if call.body["type"] == "sum":
            sum_calls.append(call)
        return items_then_square(5)(call)

    register(fake_agents(behave), capabilities=["plan", "square", "sum"])
    define("squares", fan_out())
    run_id = start(operator_client, "squares")
    run_settles(run_id, "completed", "failed")
    item = StepRun.objects.get(run_id=run_id, step_id="square", map_index=2)
    assert item.status == "completed" and Task.objects.get(task_id=item.task_id).attempts == 2
    # The join waited: sum ran once, after the retried item, with every output.
    assert len(sum_calls) == 1
    assert sum_calls[0].body["input_data"]["all"] == [0, 1, 4, 9, 16]


def test_a_map_below_its_min_success_ratio_fails_and_keeps_the_items_outputs(
    worker, operator_client, fake_agents, register, define
):
    def behave(call):
        if call.body["type"] == "square" and call.body["input_data"]["n"] % 2:
            return 400, {"error": "odd"}
        return items_then_square(4)(call)

    register(fake_agents(behave), capabilities=["plan", "square", "sum"])
    define("squares", fan_out(min_success_ratio=0.75))
    run_id = start(operator_client, "squares")
    run_settles(run_id, "failed")
    square = StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1)
    assert square.status == "failed" and square.output == [0, None, 4, None]
    assert square.error["failed_items"] == [1, 3]
    assert steps(run_id)["sum"] == "upstream_failed"


def test_a_map_at_or_above_its_min_success_ratio_completes(
    worker, operator_client, fake_agents, register, define
):
    def behave(call):
        if call.body["type"] == "square" and call.body["input_data"]["n"] == 3:
            return 400, {"error": "three"}
        return items_then_square(4)(call)

    register(fake_agents(behave), capabilities=["plan", "square", "sum"])
    define("squares", fan_out(min_success_ratio=0.75))
    run_id = start(operator_client, "squares")
    run_settles(run_id, "completed")
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).output == [0, 1, 4, None]


def test_an_empty_list_completes_the_map_at_once(worker, operator_client, fake_agents, register, define):
    register(fake_agents(items_then_square(0)), capabilities=["plan", "square", "sum"])
    define("squares", fan_out())
    run_id = start(operator_client, "squares")
    run_settles(run_id, "completed")
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).output == []


def test_mapping_over_something_that_is_not_a_list_fails_the_step(
    worker, operator_client, fake_agents, register, define
):
    register(
        fake_agents(lambda call: (200, {"result": {"items": "nope"}})), capabilities=["plan", "square", "sum"]
    )
    define("squares", fan_out())
    run_id = start(operator_client, "squares")
    run_settles(run_id, "failed")
    assert "not a list" in StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).error["message"]


def test_a_fan_out_of_1000_items_completes_with_every_output_in_order(
    worker, operator_client, fake_agents, register, define
):
    fake = fake_agents(items_then_square(1000))
    register(fake, capabilities=["plan", "square", "sum"], max_concurrency=200)
    define("squares", fan_out(max_concurrency=200))
    run_id = start(operator_client, "squares")
    run = run_settles(run_id, "completed", "failed", timeout=180)
    assert run.status == "completed"
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).output == [
        n * n for n in range(1000)
    ]
    square_calls = [c for c in fake.calls if c.body["type"] == "square"]
    assert len(square_calls) == 1000
    assert len({c.headers["idempotency-key"] for c in square_calls}) == 1000
