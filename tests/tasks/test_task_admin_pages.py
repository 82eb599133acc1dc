"""What the task admin shows: each task's agent by name (linked, and in the page's own query, however
many tasks it lists), and a task's events to the millisecond without a caption above each row."""

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.models import Task, TaskEvent

from .conftest import make_agent

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/tasks/task/"


def assigned_tasks(count):
    """`count` tasks, each assigned to an agent of its own."""
    agents = [make_agent(f"agent-{uuid.uuid4().hex[:6]}") for _ in range(count)]
    return Task.objects.bulk_create(
        Task(type="t", status="running", assigned_agent=agent) for agent in agents
    )


def test_the_task_list_names_each_tasks_agent_and_links_to_its_page(admin_client):
    alpha = make_agent("alpha")
    Task.objects.create(type="t", status="running", assigned_agent=alpha)
    Task.objects.create(type="t")  # not assigned

    html = admin_client.get(CHANGELIST).content.decode()

    assert f'<a href="/admin/agents/agent/{alpha.pk}/change/" title="{alpha.pk}">alpha</a>' in html
    assert f">{alpha.pk}<" not in html  # the id is the link's tooltip, not the cell's text
    assert "column-agent" in html


def test_an_agent_that_is_gone_leaves_its_id_in_the_list(admin_client):
    gone = uuid.uuid4()  # no foreign key constraint: the id may outlive its agent
    Task.objects.create(type="t", status="failed", assigned_agent_id=gone)

    html = admin_client.get(CHANGELIST).content.decode()

    assert f'<td class="field-agent">{gone}</td>' in html


def test_the_task_list_costs_as_many_queries_for_forty_tasks_as_for_two(admin_client):
    def queries_for_the_list():
        admin_client.get(CHANGELIST)  # sessions, permissions and the like, cached from now on
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(CHANGELIST)
        assert response.status_code == 200
        return len(queries)

    assigned_tasks(2)
    few = queries_for_the_list()
    assigned_tasks(38)
    assert queries_for_the_list() == few


def test_the_list_sorts_by_agent_name(admin_client):
    for name in ("zeta", "alpha", "mu"):
        Task.objects.create(type="t", status="running", assigned_agent=make_agent(name))
    column = 5  # after the checkbox (0): task_id, type, status, priority, agent
    html = admin_client.get(CHANGELIST, {"o": str(column)}).content.decode()
    assert html.index(">alpha</a>") < html.index(">mu</a>") < html.index(">zeta</a>")


def test_the_task_page_shows_its_events_to_the_millisecond_without_a_caption(admin_client):
    task = Task.objects.create(type="t", status="completed", attempts=1)
    first = datetime(2026, 12, 7, 21, 40, 3, 123456, tzinfo=UTC)
    TaskEvent.objects.create(task=task, kind="assigned", status="assigned", attempt=1, created_at=first)
    TaskEvent.objects.create(
        task=task,
        kind="completed",
        status="completed",
        attempt=1,
        created_at=first.replace(microsecond=130000),
    )

    html = admin_client.get(f"{CHANGELIST}{task.pk}/change/").content.decode()

    assert '<time datetime="2026-12-07T21:40:03.123456+00:00">2026-12-07 21:40:03.123 UTC</time>' in html
    assert ">2026-12-07 21:40:03.130 UTC</time>" in html
    # Django's "<task id> <kind>" caption above each row is hidden by the inline's stylesheet.
    assert '<fieldset class="module uncaptioned"' in html
    assert 'href="/static/orchestrator/admin.css"' in html


def test_the_task_page_shows_its_own_times_to_the_second(admin_client):
    task = Task.objects.create(type="ocr", required_capabilities=["ocr"])
    Task.objects.filter(pk=task.pk).update(created_at=datetime(2026, 12, 7, 21, 40, 3, 456000, tzinfo=UTC))

    page = admin_client.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()

    assert "2026-12-07 21:40:03 UTC" in page
    assert "9:40 p.m." not in page


def test_the_task_page_names_the_agent_of_each_event_with_two_queries_for_all(admin_client):
    agents = [make_agent(f"events-{n}") for n in range(6)]
    task = Task.objects.create(type="t")
    for attempt, agent in enumerate(agents, start=1):
        TaskEvent.objects.create(
            task=task,
            kind="assigned",
            status="assigned",
            attempt=attempt,
            agent_id=agent.pk,
            created_at=timezone.now(),
        )
    gone = uuid.uuid4()
    TaskEvent.objects.create(
        task=task, kind="assigned", status="assigned", attempt=7, agent_id=gone, created_at=timezone.now()
    )

    with CaptureQueriesContext(connection) as queries:
        html = admin_client.get(f"{CHANGELIST}{task.pk}/change/").content.decode()

    for agent in agents:
        assert f'<a href="/admin/agents/agent/{agent.pk}/change/" title="{agent.pk}">{agent.name}</a>' in html
    assert str(gone) in html  # an agent unregistered since keeps its id
    assert sum("agents_agent" in query["sql"] for query in queries.captured_queries) <= 3
