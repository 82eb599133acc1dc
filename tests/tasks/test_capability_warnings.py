"""A task whose capabilities no registered agent offers is created (an agent may register later) with a
warning saying so; it would otherwise wait in silence. The answers are remembered per process, so that
creations do not each ask the agents table (agents/offered.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import offered
from tasks.models import Task

from .conftest import make_agent

pytestmark = pytest.mark.django_db
TASKS = "/api/v1/tasks"


def create(client, **fields):
    return client.post(TASKS, {"type": "ocr", **fields}, format="json")


def agent_queries(queries):
    return [q["sql"] for q in queries if "agents_agent" in q["sql"]]


def test_a_capability_nobody_offers_is_a_warning_and_the_task_is_still_created(operator_client):
    make_agent("reader", capabilities=("ocr",))
    response = create(operator_client, required_capabilities=["ocr", "ocr_v2"])
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["warnings"] == [
        {
            "field": "required_capabilities",
            "message": "No registered agent offers 'ocr_v2': the task waits until one does.",
        }
    ]


def test_an_agent_that_registers_counts_within_a_second(db):
    assert offered.unserved([["ocr"], ["ocr"]], now=100.0) == {("ocr",)}
    make_agent("reader", capabilities=("ocr",))
    with CaptureQueriesContext(connection) as queries:
        assert offered.unserved([["ocr"]], now=100.9) == {("ocr",)}  # remembered: no query
    assert agent_queries(queries.captured_queries) == []
    assert offered.unserved([["ocr"]], now=101.1) == set()


def test_capabilities_offered_by_different_agents_serve_no_task_needing_both(operator_client):
    # A task goes to one agent that offers every capability it needs.
    make_agent("reader", capabilities=("ocr",))
    make_agent("translator", capabilities=("translate",))
    response = create(operator_client, required_capabilities=["translate", "ocr"])
    assert response.json()["warnings"] == [
        {
            "field": "required_capabilities",
            "message": "No registered agent offers all of 'translate', 'ocr': the task waits until one does.",
        }
    ]
    make_agent("both", capabilities=("ocr", "translate"))
    offered.forget()  # the answer "not served" holds for a second
    assert create(operator_client, required_capabilities=["ocr", "translate"]).json()["warnings"] == []


def test_answers_are_remembered_so_creations_ask_the_agents_table_nothing(operator_client, monkeypatch):
    monkeypatch.setattr(offered, "UNSERVED_TTL_SECONDS", 3600.0)  # however slow this machine
    make_agent("reader", capabilities=("ocr",))
    assert create(operator_client, required_capabilities=["ocr"]).json()["warnings"] == []
    assert create(operator_client, type="translate").json()["warnings"] != []  # its type, by default
    with CaptureQueriesContext(connection) as queries:
        again = create(operator_client, required_capabilities=["ocr"])
        plain = create(operator_client)  # type ocr: the capability ocr
        unserved = create(operator_client, type="translate")
    assert again.json()["warnings"] == [] and plain.json()["warnings"] == []
    assert [w["message"] for w in unserved.json()["warnings"]] == [
        "No registered agent offers 'translate': the task waits until one does."
    ]
    assert agent_queries(queries.captured_queries) == []


def test_a_repeated_idempotent_creation_warns_again(operator_client):
    first = operator_client.post(
        TASKS, {"type": "ocr", "required_capabilities": ["ocr"]}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    again = operator_client.post(
        TASKS, {"type": "ocr", "required_capabilities": ["ocr"]}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["warnings"] == first.json()["warnings"] != []


def test_a_bulk_names_each_task_that_nobody_serves(operator_client):
    make_agent("reader", capabilities=("ocr",))
    tasks = [
        {"type": "ocr", "required_capabilities": ["ocr"]},
        {"type": "x", "required_capabilities": ["translate"]},
        {"type": "ocr"},
        {"type": "x", "required_capabilities": ["ocr", "translate"]},
    ]
    response = operator_client.post(f"{TASKS}/bulk", {"tasks": tasks}, format="json")
    assert response.status_code == 201 and response.json()["count"] == 4
    assert [w["field"] for w in response.json()["warnings"]] == [
        "tasks[1].required_capabilities",
        "tasks[3].required_capabilities",
    ]


def test_a_replayed_bulk_names_each_task_by_its_place_in_the_request(operator_client):
    tasks = [{"type": "ocr"}, {"type": "ocr"}, {"type": "translate"}]

    def post():
        bulk = {"tasks": tasks}
        return operator_client.post(f"{TASKS}/bulk", bulk, format="json", HTTP_IDEMPOTENCY_KEY="b")

    first = post()
    assert [w["field"] for w in first.json()["warnings"]] == [
        "tasks[0].required_capabilities",
        "tasks[1].required_capabilities",
        "tasks[2].required_capabilities",
    ]
    # An operator deletes the first, finished, task: the replay leaves it out, and names the others
    # by their places all the same.
    Task.objects.filter(task_id=first.json()["task_ids"][0]).update(status="completed")
    Task.objects.filter(task_id=first.json()["task_ids"][0]).delete()
    replay = post()
    assert replay.status_code == 200 and replay.json()["task_ids"] == first.json()["task_ids"][1:]
    assert [w["field"] for w in replay.json()["warnings"]] == [
        "tasks[1].required_capabilities",
        "tasks[2].required_capabilities",
    ]
