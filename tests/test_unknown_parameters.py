"""A list's query parameter that it does not take is a 400 naming the ones it does: a misspelt filter
must not answer the unfiltered list as if it were the filtered one."""

import uuid

import pytest

from tasks.models import Task

pytestmark = pytest.mark.django_db

RUN = "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize(
    "path, wrong, named",
    [
        ("/api/v1/tasks", {"agent": str(uuid.uuid4())}, "agent_id"),
        ("/api/v1/tasks", {"search": "ocr"}, "priority_min"),  # tasks have no free-text search
        ("/api/v1/agents", {"capabilities": "ocr"}, "capability"),
        ("/api/v1/workflow-runs", {"parent": RUN}, "parent_run_id"),
        ("/api/v1/workflows", {"workflow": "report"}, "name"),
        ("/api/v1/capabilities", {"name": "ocr"}, "format"),  # a list that takes no filter
    ],
)
def test_an_unknown_parameter_is_a_400_naming_the_ones_the_list_takes(operator_client, path, wrong, named):
    response = operator_client.get(path, wrong)

    assert response.status_code == 400
    [(param, [message])] = response.json().items()
    assert param == next(iter(wrong))
    assert message.startswith("Unknown parameter. This endpoint takes: ") and named in message


@pytest.mark.parametrize(
    "path, params",
    [
        (
            "/api/v1/tasks",
            {"status": "pending", "type": "ocr", "priority_min": 1, "ordering": "priority", "page_size": 5},
        ),
        ("/api/v1/agents", {"search": "a", "capability": "ocr", "page": 1, "page_size": 5, "format": "json"}),
        ("/api/v1/workflow-runs", {"workflow": "report", "parent_run_id": RUN, "ordering": "-created_at"}),
        ("/api/v1/workflows", {"name": "rep"}),
    ],
)
def test_every_parameter_a_list_documents_is_taken(operator_client, path, params):
    assert operator_client.get(path, params).status_code == 200


def test_a_next_page_link_is_taken_as_it_is_given(operator_client):
    for _ in range(3):
        Task.objects.create(type="ocr", required_capabilities=["ocr"])
    first = operator_client.get("/api/v1/tasks", {"page_size": 2, "status": "pending"}).json()
    following = operator_client.get(first["next"])
    assert following.status_code == 200 and len(following.json()["results"]) == 1


def test_a_detail_views_own_parameters_are_not_a_lists(operator_client):
    task = Task.objects.create(type="ocr", required_capabilities=["ocr"])
    # The result report takes ?attempt= (a detail action: the list's check does not apply).
    response = operator_client.post(
        f"/api/v1/tasks/{task.task_id}/result?attempt=x", {"status": "completed"}, format="json"
    )
    assert response.status_code == 400 and "attempt" in response.json()


def test_the_schema_documents_search_only_where_a_list_takes_it(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    def takes(path):
        return {p["name"] for p in schema["paths"][path]["get"]["parameters"]}

    assert "search" in takes("/api/v1/agents")
    assert "search" not in takes("/api/v1/tasks") and "search" not in takes("/api/v1/workflow-runs")


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/workflow-runs", "/api/v1/agents"])
def test_an_empty_typed_filter_says_so_in_the_same_words_everywhere(operator_client, path):
    response = operator_client.get(path, {"status": ""})
    assert response.status_code == 400 and response.json() == {"status": ["Must not be empty."]}
