"""A sub-workflow step's child run is found from its parent: `?parent_run_id=` lists a run's children."""

from .helpers import RUNS, start


def test_a_parents_children_are_listed_by_its_id(operator_client, define):
    define("child", [{"id": "leaf", "task_type": "work"}])
    define("parent", [{"id": "sub", "type": "workflow", "workflow": "child"}])
    parent = start(operator_client, "parent")
    other = start(operator_client, "parent")
    start(operator_client, "child")  # a run of its own, nobody's child

    listed = operator_client.get(RUNS, {"parent_run_id": parent}).json()["results"]

    assert [run["workflow"] for run in listed] == ["child"]
    assert [run["parent_run_id"] for run in listed] == [parent]
    assert (
        operator_client.get(RUNS, {"parent_run_id": other}).json()["results"][0]["run_id"]
        != listed[0]["run_id"]
    )
    assert operator_client.get(RUNS, {"parent_run_id": "not-a-uuid"}).status_code == 400
