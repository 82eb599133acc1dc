"""An operator's retry makes a new step attempt, so its agent calls carry a new idempotency key
(run:step:index:attempt): never the key of an earlier attempt, for a whole map step as for one item."""

import threading

from workflows.models import StepRun

from .helpers import RUNS, run_settles, start
from .test_map_steps import fan_out, items_then_square


def test_retrying_a_whole_map_gives_every_item_a_key_it_never_had(
    worker, operator_client, fake_agents, register, define
):
    broken = threading.Event()
    broken.set()

    def behave(call):
        if call.body["type"] == "square" and call.body["input_data"]["n"] == 1 and broken.is_set():
            return 400, {"error": "one"}
        return items_then_square(3)(call)

    fake = fake_agents(behave)
    register(fake, capabilities=["plan", "square", "sum"])
    define("squares", fan_out())
    run_id = start(operator_client, "squares")
    run_settles(run_id, "failed")
    # Item 1 alone, still broken: its attempt 2 fails too.
    retried = operator_client.post(f"{RUNS}/{run_id}/steps/square/retry", {"map_index": 1}, format="json")
    assert retried.status_code == 200, retried.json()
    run_settles(run_id, "failed")
    broken.clear()
    # Then the whole map: every item runs again, each as a new attempt of its own.
    retried = operator_client.post(f"{RUNS}/{run_id}/steps/square/retry", {}, format="json")
    assert retried.status_code == 200, retried.json()
    run_settles(run_id, "completed")

    keys = [c.headers["idempotency-key"] for c in fake.calls if c.body["type"] == "square"]
    assert len(keys) == 3 + 1 + 3
    assert sorted(set(keys)) == sorted(keys), f"a key was reused: {keys}"
    by_index = {
        index: attempt
        for index, attempt in StepRun.objects.filter(
            run_id=run_id, step_id="square", map_index__gte=0
        ).values_list("map_index", "attempt")
    }
    assert by_index == {0: 2, 1: 3, 2: 2}
    assert StepRun.objects.get(run_id=run_id, step_id="square", map_index=-1).output == [0, 1, 4]
