"""A cursor the lists did not give out is a 400 naming `cursor` (bad input), never a 404 (which means an
unknown id here) nor a 500 (a forged position the database cannot compare)."""

import base64
from urllib.parse import urlencode

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from orchestrator_project.pagination import KeysetPagination
from workflows.models import StepRun
from workflows.views import MapItemPagination

LISTS = ["/api/v1/tasks", "/api/v1/workflow-runs"]
MESSAGE = "Invalid cursor: use the `next` or `previous` link of a page as it was given."


def cursor(**tokens):
    return base64.b64encode(urlencode(tokens).encode()).decode()


BAD = [
    ({"cursor": "garbage"}, "not base64"),
    ({"cursor": "%%%"}, "not base64 either"),
    ({"cursor": ""}, "empty"),
    ({"cursor": cursor(r="x")}, "a direction that is not a number"),
    ({"cursor": cursor(o="-1")}, "a negative offset"),
    ({"cursor": cursor(p="yesterday")}, "a position that is not a time (ordered by -created_at)"),
    ({"cursor": cursor(p="abc"), "ordering": "priority"}, "a priority that is not a number"),
    ({"cursor": cursor(p="a\x00b"), "ordering": "status"}, "a NUL inside the encoded position"),
]


@pytest.fixture
def client(operator_client):
    operator_client.raise_request_exception = False  # a 500 is an answer to check, not an exception
    return operator_client


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(("query", "why"), BAD, ids=[why for _, why in BAD])
def test_a_bad_cursor_is_a_400_naming_the_cursor(client, path, query, why):
    response = client.get(path, query)
    assert response.status_code == 400, (why, response.status_code, response.content[:300])
    assert response.json() == {"cursor": [MESSAGE]}


@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_within_the_ordering_still_works(client, path):
    for query in ({"cursor": cursor(p="5"), "ordering": "priority"}, {"cursor": cursor(o="3", r="1")}):
        response = client.get(path, query)
        assert response.status_code == 200, response.content
        assert set(response.json()) == {"next", "previous", "results"}


def test_the_tasks_next_and_previous_links_still_page(client):
    for priority in (1, 2, 3):
        assert (
            client.post("/api/v1/tasks", {"type": "t", "priority": priority}, format="json").status_code
            == 201
        )
    first = client.get("/api/v1/tasks", {"ordering": "priority", "page_size": 2}).json()
    second = client.get(first["next"]).json()
    assert [t["priority"] for t in first["results"] + second["results"]] == [1, 2, 3]
    back = client.get(second["previous"]).json()
    assert [t["priority"] for t in back["results"]] == [1, 2]


def test_a_map_steps_items_are_held_to_their_own_ordering(db):
    # Item order is map_index (an integer): a position that is not a number is refused before any query.
    factory = APIRequestFactory()
    for pagination, good, bad in (
        (MapItemPagination(), "7", "seven"),
        (KeysetPagination(), "2026-01-01T00:00:00+00:00", "seven"),
    ):
        request = Request(factory.get("/", {"cursor": cursor(p=good)}))
        assert pagination.paginate_queryset(StepRun.objects.all(), request) == []
        request = Request(factory.get("/", {"cursor": cursor(p=bad)}))
        with pytest.raises(Exception) as refused:
            pagination.paginate_queryset(StepRun.objects.all(), request)
        assert refused.value.status_code == 400 and refused.value.detail == {"cursor": [MESSAGE]}
