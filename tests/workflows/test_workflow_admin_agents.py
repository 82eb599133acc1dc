"""A run's page in the admin names each step's agent, linked to its page, in the page's own queries
however many steps the run has."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tasks.models import Task
from tests.tasks.conftest import make_agent
from workflows import runs
from workflows.models import StepRun

pytestmark = pytest.mark.django_db

RUNS = "/admin/workflows/workflowrun/"


@pytest.fixture
def client(operator):
    client = Client()
    client.force_login(operator)
    return client


def run_with_assigned_steps(define, name, count):
    """A run of `count` side-by-side task steps, each step's task assigned to an agent of its own."""
    define(name, [{"id": f"s{n}", "task_type": "t"} for n in range(count)])
    run, _ = runs.start_run(workflow=name, input={})
    steps = list(StepRun.objects.filter(run=run, task__isnull=False))
    assert len(steps) == count
    agents = []
    for n, step in enumerate(steps):
        agents.append(make_agent(f"{name}-agent-{n}"))
        Task.objects.filter(pk=step.task_id).update(assigned_agent=agents[-1], status="assigned")
    return run, agents


def test_the_steps_rows_name_their_agents(client, define):
    run, agents = run_with_assigned_steps(define, "named", 2)
    html = client.get(f"{RUNS}{run.run_id}/change/").content.decode()
    for agent in agents:
        assert f'<a href="/admin/agents/agent/{agent.pk}/change/" title="{agent.pk}">{agent.name}</a>' in html


def test_the_run_page_costs_as_many_queries_for_eight_steps_as_for_two(client, define):
    def queries_for(run):
        client.get(f"{RUNS}{run.run_id}/change/")  # sessions and permissions, cached from now on
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"{RUNS}{run.run_id}/change/").status_code == 200
        return len(queries)

    few, _ = run_with_assigned_steps(define, "few", 2)
    many, _ = run_with_assigned_steps(define, "many", 8)
    assert queries_for(many) == queries_for(few)
