"""`?ordering=` on every list: a field the list cannot be ordered by is a 400 naming the ones it can,
and an ordering it accepts pages through every row."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import Task

pytestmark = pytest.mark.django_db
LISTS = ["/api/v1/tasks", "/api/v1/workflow-runs", "/api/v1/agents"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("ordering", ["bogus", "created_at,bogus", "-finished_at", "token_hash"])
def test_an_unknown_ordering_is_a_400_naming_the_valid_ones(operator_client, path, ordering):
    response = operator_client.get(path, {"ordering": ordering})

    assert response.status_code == 400
    [message] = response.json()["ordering"]
    assert message.startswith("Cannot order by ") and "created_at" in message


@pytest.mark.parametrize("path", LISTS)
def test_a_valid_ordering_is_accepted(operator_client, path):
    assert operator_client.get(path, {"ordering": "-created_at"}).status_code == 200


@pytest.mark.parametrize(
    "ordering", ["created_at", "-created_at", "priority", "-priority", "status", "updated_at"]
)
def test_every_task_ordering_pages_through_every_task(operator_client, ordering):
    now = timezone.now()
    made = set()
    for n in range(7):
        finished = n < 3
        task = Task.objects.create(
            type="ocr",
            required_capabilities=["ocr"],
            priority=1 + n % 3,
            status="completed" if finished else "pending",
            finished_at=now - timedelta(seconds=n) if finished else None,
        )
        made.add(str(task.task_id))

    seen, url = [], f"/api/v1/tasks?ordering={ordering}&page_size=2"
    while url:
        page = operator_client.get(url)
        assert page.status_code == 200, page.content
        seen += [row["task_id"] for row in page.json()["results"]]
        url = page.json()["next"]

    assert sorted(seen) == sorted(made)


def test_agents_that_tie_on_the_ordering_page_through_once_each(operator_client):
    from tests.agents.conftest import make_agent

    made = {str(make_agent(f"agent-{n}", endpoint=f"http://127.0.0.1:{9000 + n}").pk) for n in range(7)}

    seen = []
    for page in (1, 2, 3, 4):
        response = operator_client.get("/api/v1/agents", {"ordering": "status", "page_size": 2, "page": page})
        assert response.status_code == 200, response.content
        seen += [row["agent_id"] for row in response.json()["results"]]

    assert sorted(seen) == sorted(made)
