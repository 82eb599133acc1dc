"""A run's events in its detail use null where they concern no step (the run itself) or no item (a whole
step), as its steps and the event stream do."""

from .helpers import run_settles, start


def test_the_runs_events_say_null_where_they_concern_no_step_or_no_item(operator_client, define):
    define(
        "one-check",
        [{"id": "check", "type": "condition", "when": {"path": "$.input.n", "op": "eq", "value": 1}}],
    )
    run_id = start(operator_client, "one-check", {"n": 1})
    run_settles(run_id, "completed")

    events = operator_client.get(f"/api/v1/workflow-runs/{run_id}").json()["events"]

    assert {(event["step_id"], event["map_index"]) for event in events} == {(None, None), ("check", None)}
