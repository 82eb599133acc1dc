"""The tasks API: creation rules, validation, idempotency, bulk, listing, detail, cancel, retry."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks import services
from tasks.models import Task, TaskEvent

TASKS = "/api/v1/tasks"
VALID = {"type": "document_analysis", "description": "Analyse", "input_data": {"doc": "a.pdf"}}


def create(client, **overrides):
    response = client.post(TASKS, {**VALID, **overrides}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_it_creates_a_pending_task_with_the_documented_defaults(operator_client):
    body = create(operator_client)
    assert body["status"] == "pending"
    assert body["required_capabilities"] == ["document_analysis"]
    assert (body["priority"], body["max_retries"], body["timeout_seconds"], body["attempts"]) == (5, 3, 60, 0)
    assert body["auto_dispatch"] is True and body["agent_id"] is None
    assert Task.objects.filter(task_id=body["task_id"]).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", ""),
        ("type", 12),
        ("type", "x" * 101),
        ("type", "bad type!"),
        ("description", 5.5),
        ("description", "nul\x00byte"),
        ("description", "x" * 10001),
        ("input_data", [1, 2]),
        ("input_data", "text"),
        ("input_data", {"a": "nul\x00"}),
        ("input_data", {"k\x00": 1}),
        ("required_capabilities", []),
        ("required_capabilities", "document_analysis"),
        ("required_capabilities", [""]),
        ("required_capabilities", [{"a": 1}]),
        ("priority", 0),
        ("priority", 11),
        ("priority", "high"),
        ("priority", 1.5),
        ("max_retries", -1),
        ("timeout_seconds", 0),
        ("timeout_seconds", "soon"),
        ("deadline", "yesterday"),
        ("deadline", "2001-01-01T00:00:00Z"),
        ("auto_dispatch", "perhaps"),
        ("strategy", "telepathy"),
        ("status", "completed"),
        ("agent_id", str(uuid.uuid4())),
        ("attempts", 3),
        ("failover_until", "2100-01-01T00:00:00Z"),
        ("task_id", str(uuid.uuid4())),
        ("result", {"forged": True}),
    ],
)
def test_a_bad_field_gets_400_naming_it_and_stores_nothing(operator_client, field, value):
    response = operator_client.post(TASKS, {**VALID, field: value}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert Task.objects.count() == 0


def test_deeply_nested_or_oversized_input_is_refused(operator_client, settings):
    deep = {}
    cursor = deep
    for _ in range(40):
        cursor["n"] = {}
        cursor = cursor["n"]
    assert operator_client.post(TASKS, {**VALID, "input_data": deep}, format="json").status_code == 400
    settings.TASK_MAX_INPUT_BYTES = 1000
    response = operator_client.post(TASKS, {**VALID, "input_data": {"blob": "x" * 2000}}, format="json")
    assert response.status_code == 400 and "limit is 1000 bytes" in str(response.json()["input_data"])
    assert Task.objects.count() == 0


def test_invalid_json_gets_400(operator_client):
    response = operator_client.generic("POST", TASKS, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert Task.objects.count() == 0


def test_an_idempotency_key_returns_the_same_task(operator_client):
    first = operator_client.post(TASKS, VALID, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    again = operator_client.post(TASKS, VALID, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["task_id"] == again.json()["task_id"]
    assert Task.objects.count() == 1


def test_an_idempotency_key_reused_with_another_body_is_a_conflict(operator_client):
    operator_client.post(TASKS, VALID, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    response = operator_client.post(
        TASKS, {**VALID, "priority": 1}, format="json", HTTP_IDEMPOTENCY_KEY="order-43"
    )
    assert response.status_code == 409
    assert Task.objects.count() == 1


def test_bulk_creates_all_tasks_in_one_request(operator_client):
    response = operator_client.post(
        f"{TASKS}/bulk", {"tasks": [{**VALID, "priority": p} for p in range(1, 11)]}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["count"] == 10
    assert Task.objects.count() == 10


# A small bulk is one INSERT of all its tasks, a larger one a COPY.
@pytest.mark.parametrize("padding", [0, services.INSERT_MAX_ROWS], ids=["insert", "copy"])
def test_bulk_stores_every_field_exactly_as_a_single_creation_does(operator_client, padding):
    """Bulk writes with one INSERT or with COPY, single creation with an INSERT: the rows must not
    differ."""
    rich = {
        "type": "doc.analysis",
        "description": "tab\there, new line\nbackslash \\ and \\N, quote ' \" and \u00e9\u4e2d\U0001f600",
        "input_data": {
            "text": 'quote " backslash \\ \\N tab\t line\n \u00e9',
            "nested": {"list": [1, 2.5, None, True, "\\."], "empty": {}},
        },
        "required_capabilities": ["doc.analysis", "ocr:v2", "a/b"],
        "priority": 2,
        "max_retries": 7,
        "timeout_seconds": 42,
        "deadline": (timezone.now() + timedelta(hours=2)).isoformat(),
        "auto_dispatch": False,
        "strategy": "round_robin",
    }
    plain = {"type": "summarize"}
    single = [create(operator_client, **body)["task_id"] for body in (rich, {**VALID, **plain})]
    items = [rich, {**VALID, **plain}] + [VALID] * padding
    response = operator_client.post(f"{TASKS}/bulk", {"tasks": items}, format="json")
    assert response.status_code == 201, response.content
    bulk = response.json()["task_ids"][:2]
    varying = {"task_id", "created_at", "updated_at", "next_attempt_at"}
    columns = [f.attname for f in Task._meta.concrete_fields if f.attname not in varying]

    def row(task_id):
        return Task.objects.filter(task_id=task_id).values(*columns).get()

    for one, many in zip(single, bulk, strict=True):
        assert row(many) == row(one)
    assert row(bulk[0])["input_data"] == rich["input_data"]
    assert row(bulk[0])["description"] == rich["description"]


def test_bulk_is_all_or_nothing(operator_client):
    tasks = [VALID] * 5 + [{**VALID, "priority": 99}]
    response = operator_client.post(f"{TASKS}/bulk", {"tasks": tasks}, format="json")
    assert response.status_code == 400
    errors = response.json()["tasks"]
    # Only the bad item is reported, by its index.
    assert "priority" in str(errors["5"] if isinstance(errors, dict) else errors[5])
    assert Task.objects.count() == 0


def test_bulk_refuses_more_than_the_limit(operator_client, settings):
    settings.TASK_BULK_MAX = 3
    response = operator_client.post(f"{TASKS}/bulk", {"tasks": [VALID] * 4}, format="json")
    assert response.status_code == 400
    assert Task.objects.count() == 0


def test_listing_is_paginated_filtered_and_ordered(operator_client):
    urgent = create(operator_client, priority=1)
    create(operator_client, priority=9)
    create(operator_client, type="translation")
    Task.objects.filter(task_id=urgent["task_id"]).update(status="failed")

    page = operator_client.get(TASKS, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"] and page["previous"] is None
    rest = operator_client.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    seen = {t["task_id"] for t in page["results"] + rest["results"]}
    assert len(seen) == 3
    assert [t["type"] for t in operator_client.get(TASKS, {"type": "translation"}).json()["results"]] == [
        "translation"
    ]
    assert [t["task_id"] for t in operator_client.get(TASKS, {"status": "failed"}).json()["results"]] == [
        urgent["task_id"]
    ]
    by_priority = operator_client.get(TASKS, {"ordering": "priority"}).json()["results"]
    assert [t["priority"] for t in by_priority] == [1, 5, 9]

    def count(**params):
        return len(operator_client.get(TASKS, params).json()["results"])

    assert count(priority=9) == 1
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert count(created_after=future) == 0
    assert count(created_before=future) == 3
    assert count(agent_id=str(uuid.uuid4())) == 0


def test_unknown_and_malformed_ids_get_404(operator_client):
    assert operator_client.get(f"{TASKS}/{uuid.uuid4()}").status_code == 404
    assert operator_client.get(f"{TASKS}/not-a-uuid").status_code == 404
    assert operator_client.delete(f"{TASKS}/{uuid.uuid4()}").status_code == 404
    assert operator_client.post(f"{TASKS}/{uuid.uuid4()}/retry").status_code == 404


def test_cancel_then_cancel_again_is_a_conflict(operator_client):
    task = create(operator_client)
    response = operator_client.delete(f"{TASKS}/{task['task_id']}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = operator_client.delete(f"{TASKS}/{task['task_id']}")
    assert again.status_code == 409
    assert TaskEvent.objects.filter(task_id=task["task_id"], kind="cancelled").count() == 1


def test_retry_runs_a_failed_or_cancelled_task_again_but_not_a_pending_one(operator_client):
    task = create(operator_client)
    assert operator_client.post(f"{TASKS}/{task['task_id']}/retry").status_code == 409
    operator_client.delete(f"{TASKS}/{task['task_id']}")
    response = operator_client.post(f"{TASKS}/{task['task_id']}/retry")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    detail = operator_client.get(f"{TASKS}/{task['task_id']}").json()
    assert [e["kind"] for e in detail["events"]] == ["created", "cancelled", "requeued"]


def test_viewers_read_but_cannot_write(viewer_client, operator_client):
    task = create(operator_client)
    assert viewer_client.get(TASKS).status_code == 200
    assert viewer_client.get(f"{TASKS}/{task['task_id']}").status_code == 200
    assert viewer_client.post(TASKS, VALID, format="json").status_code == 403
    assert viewer_client.delete(f"{TASKS}/{task['task_id']}").status_code == 403
    assert viewer_client.post(f"{TASKS}/{task['task_id']}/execute").status_code == 403
    assert viewer_client.post(f"{TASKS}/bulk", {"tasks": [VALID]}, format="json").status_code == 403


def test_anonymous_requests_get_401(anon_client):
    assert anon_client.get(TASKS).status_code == 401
    assert anon_client.post(TASKS, VALID, format="json").status_code == 401
    assert anon_client.post(f"{TASKS}/{uuid.uuid4()}/execute").status_code == 401
