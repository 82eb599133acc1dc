"""POST /api/v1/tasks/bulk with an Idempotency-Key: a retried request returns the tasks the first one made
instead of making them again, as a single creation does."""

import pytest

from tasks import services
from tasks.models import Task

pytestmark = pytest.mark.django_db
BULK = "/api/v1/tasks/bulk"
# Up to INSERT_MAX_ROWS tasks are one INSERT, more are a COPY: both paths.
SIZES = [3, services.INSERT_MAX_ROWS + 24]


def body(count, priority=5):
    return {"tasks": [{"type": "ocr", "input_data": {"page": n}, "priority": priority} for n in range(count)]}


def post(client, payload, key):
    return client.post(BULK, payload, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.parametrize("count", SIZES)
def test_a_repeated_request_returns_the_same_tasks(operator_client, count):
    first = post(operator_client, body(count), "batch-7")
    again = post(operator_client, body(count), "batch-7")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()  # the same ids, in the request's order
    assert first.json()["count"] == count
    assert Task.objects.count() == count
    pages = [Task.objects.get(pk=task_id).input_data["page"] for task_id in first.json()["task_ids"]]
    assert pages == list(range(count))


@pytest.mark.parametrize("count", SIZES)
def test_the_key_with_another_body_is_a_conflict(operator_client, count):
    post(operator_client, body(count), "batch-8")

    response = post(operator_client, body(count, priority=1), "batch-8")

    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]
    assert Task.objects.count() == count


@pytest.mark.parametrize("count", SIZES)
def test_of_two_requests_racing_with_one_key_the_second_returns_the_firsts_tasks(
    operator, count, monkeypatch
):
    """The second request checked the key before the first committed; its write then meets the first's
    keys, and it answers with the first's tasks rather than an error or a second set."""
    items = body(count)["tasks"]
    made, created = services.create_tasks_bulk_once(items=items, user=operator, idempotency_key="race")
    assert created

    real_replay, looks = services._bulk_replay, []

    def replay(*args, **kwargs):
        looks.append(args)
        # The second request's first look finds nothing: the first had not committed yet.
        return None if len(looks) == 1 else real_replay(*args, **kwargs)

    monkeypatch.setattr(services, "_bulk_replay", replay)

    again, created = services.create_tasks_bulk_once(items=items, user=operator, idempotency_key="race")

    assert not created and len(looks) == 2
    assert [task.pk for task in again] == [task.pk for task in made]
    assert Task.objects.count() == count


def test_a_bulk_key_and_a_single_creations_key_do_not_meet(operator_client):
    single = operator_client.post(
        "/api/v1/tasks", {"type": "ocr"}, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    bulk = post(operator_client, body(2), "shared")

    assert (single.status_code, bulk.status_code) == (201, 201)
    assert Task.objects.count() == 3


@pytest.mark.parametrize("key", ["", "x" * 251, "tab\tkey"])
def test_a_bad_key_is_refused_and_nothing_is_made(operator_client, key):
    response = post(operator_client, body(2), key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert Task.objects.count() == 0


def test_a_repeat_after_the_first_task_was_deleted_replays_the_rest(operator_client):
    # Its first look (at key#0) finds nothing; the write then meets key#1, and every key is looked at.
    made = post(operator_client, body(3), "gone").json()["task_ids"]
    Task.objects.filter(task_id=made[0]).update(status="completed")
    Task.objects.filter(task_id=made[0]).delete()
    again = post(operator_client, body(3), "gone")
    assert again.status_code == 200 and again.json()["task_ids"] == made[1:]
    assert post(operator_client, body(4), "gone").status_code == 409
