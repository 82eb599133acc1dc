"""A map's items in the API: the run's detail lists whole steps only, each map step with its items
counted by status (one grouped query for the run), and the items are read a page at a time from
GET /api/v1/workflow-runs/{run_id}/steps/{step_id}/items (item order, ?status=, the detail's roles)."""

import threading
import uuid

from django.db import connection
from django.test.utils import CaptureQueriesContext

from workflows import definitions, runs

from .helpers import RUNS, run_settles, start, step_settles
from .test_map_steps import fan_out, items_then_square

# plan, then two maps over its items: square (two at a time, then sum) and cube.
SQUARES_AND_CUBES = [
    *fan_out(max_concurrency=2),
    {
        "id": "cube",
        "type": "map",
        "depends_on": ["plan"],
        "task_type": "cube",
        "over": {"$path": "$.steps.plan.output.items"},
        "input": {"n": {"$path": "$.item"}},
    },
]


def squares_held_until(release, *, failing=()):
    """Squares wait for `release` (so items stay running and waiting); `failing` numbers fail for good."""

    def behave(call):
        kind, data = call.body["type"], call.body["input_data"]
        if kind == "square" and data["n"] in failing:
            return 400, {"error": f"no square of {data['n']}"}
        if kind == "square":
            return lambda: (release.wait(20), (200, {"result": data["n"] ** 2}))[1]
        if kind == "cube":
            return 200, {"result": data["n"] ** 3}
        return items_then_square(6)(call)

    return behave


def by_id(detail):
    return {step["step_id"]: step for step in detail["steps"]}


def test_the_detail_lists_whole_steps_and_counts_each_maps_items_by_status(
    worker, operator_client, fake_agents, register, define
):
    release = threading.Event()
    fake = fake_agents(squares_held_until(release, failing={3}))
    register(fake, capabilities=["plan", "square", "cube", "sum"], max_concurrency=20)
    define("squares-and-cubes", SQUARES_AND_CUBES)
    run_id = start(operator_client, "squares-and-cubes")
    step_settles(run_id, "cube", "completed")
    fake.wait_for_calls(1 + 2 + 6)  # plan, the first two squares (max_concurrency 2), six cubes

    during = by_id(operator_client.get(f"{RUNS}/{run_id}").json())
    assert sorted(during) == ["cube", "plan", "square", "sum"]  # no item rows
    assert during["square"]["items"] == {"total": 6, "by_status": {"running": 2, "waiting": 4}}
    assert during["cube"]["items"] == {"total": 6, "by_status": {"completed": 6}}
    assert during["plan"]["items"] is None and during["sum"]["items"] is None

    release.set()
    run_settles(run_id, "failed")
    with CaptureQueriesContext(connection) as queries:
        detail = operator_client.get(f"{RUNS}/{run_id}").json()
    steps = by_id(detail)
    assert [s["map_index"] for s in detail["steps"]] == [None] * 4
    assert steps["square"]["status"] == "failed"
    assert steps["square"]["items"] == {"total": 6, "by_status": {"completed": 5, "failed": 1}}
    assert steps["cube"]["items"] == {"total": 6, "by_status": {"completed": 6}}
    # Both maps counted by one grouped query, not one per map step.
    assert len([q for q in queries.captured_queries if "GROUP BY" in q["sql"]]) == 1


def test_the_items_come_a_page_at_a_time_in_item_order_and_filter_by_status(
    worker, operator_client, viewer_client, fake_agents, register, define
):
    release = threading.Event()
    release.set()
    register(
        fake_agents(squares_held_until(release, failing={3})), capabilities=["plan", "square", "cube", "sum"]
    )
    define("squares-and-cubes", SQUARES_AND_CUBES)
    run_id = start(operator_client, "squares-and-cubes")
    run_settles(run_id, "failed")
    url = f"{RUNS}/{run_id}/steps/square/items"

    # A viewer reads the items as it reads the run's detail.
    first = viewer_client.get(url, {"page_size": 4})
    assert first.status_code == 200, first.content
    assert [item["map_index"] for item in first.json()["results"]] == [0, 1, 2, 3]
    second = viewer_client.get(first.json()["next"])
    assert [item["map_index"] for item in second.json()["results"]] == [4, 5]
    assert second.json()["next"] is None
    completed = first.json()["results"][2]
    assert completed["status"] == "completed" and completed["output"] == 4 and completed["attempt"] == 1
    assert completed["input"] == {"n": 2, "at": 2} and completed["agent_id"] and completed["task_id"]
    assert completed["started_at"] and completed["finished_at"] and completed["task_attempts"] == 1

    failed = operator_client.get(url, {"status": "failed"}).json()["results"]
    assert [(item["map_index"], item["status"]) for item in failed] == [(3, "failed")]
    assert failed[0]["error"]["message"] == "the task failed" and failed[0]["output"] is None
    both = operator_client.get(f"{url}?status=failed&status=completed&page_size=2").json()
    assert [item["map_index"] for item in both["results"]] == [0, 1] and both["next"]


def test_unknown_runs_and_steps_are_404_and_other_steps_or_bad_filters_are_field_errors(
    operator_client, viewer_client
):
    definitions.create_definition(
        name="fan",
        spec={
            "steps": [
                {"id": "fan", "type": "map", "task_type": "t", "over": {"$path": "$.input.items"}},
                {"id": "after", "task_type": "t", "depends_on": ["fan"]},
            ]
        },
    )
    run, _ = runs.start_run(workflow="fan", input={"items": [1, 2, 3]})
    items = f"{RUNS}/{run.run_id}/steps/fan/items"
    assert viewer_client.get(items).json()["results"][0]["status"] == "running"

    assert operator_client.get(f"{RUNS}/{uuid.uuid4()}/steps/fan/items").status_code == 404
    assert operator_client.get(f"{RUNS}/{run.run_id}/steps/nope/items").status_code == 404
    not_a_map = operator_client.get(f"{RUNS}/{run.run_id}/steps/after/items")
    assert not_a_map.status_code == 400
    assert "only a map step has items" in not_a_map.json()["step_id"][0]
    # Items come in item order only: ?ordering= is an unknown parameter here.
    for bad in ({"status": "sleeping"}, {"status": ""}, {"page_size": "0"}, {"ordering": "-map_index"}):
        response = operator_client.get(items, bad)
        assert response.status_code == 400 and set(response.json()) == set(bad), (bad, response.json())


def test_the_items_endpoint_is_in_the_schema_paginated_filtered_and_with_an_example(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    get = schema["paths"]["/api/v1/workflow-runs/{run_id}/steps/{step_id}/items"]["get"]
    assert {p["name"] for p in get["parameters"]} >= {"run_id", "step_id", "status", "cursor", "page_size"}
    ok = get["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/PaginatedStepRunList")
    example = ok["examples"]["AFailedItemOfAMap"]["value"]["results"][0]
    assert example["status"] == "failed" and example["map_index"] == 7
    assert set(get["responses"]) >= {"200", "400", "404"}
    step = schema["components"]["schemas"]["Step"]["properties"]
    assert step["items"]["allOf"] == [{"$ref": "#/components/schemas/MapItemsSummary"}]
