"""The hot statements are parsed once per connection, not at every execution.

psycopg rewrites a statement's %s placeholders at every execution when its text is longer than 4,096
characters or it has more than 50 parameters (its cache stops there). The writer's release of a
batch's agents, indented, was the first; the INSERT of a few tasks (a workflow's next steps) the second.
"""

import psycopg._queries
import pytest
from django.db import transaction
from django.utils import timezone

from agents import capacity
from agents.models import Agent
from orchestrator_project.prepared import one_line
from tasks import services
from tasks.models import Task
from tests.agents.conftest import make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def parsed_uncached(monkeypatch):
    """The statements psycopg parses past its cache, as they run."""
    parsed = []
    parse = psycopg._queries._query2pg_nocache

    def spy(query, *args, **kwargs):
        parsed.append(bytes(query))
        return parse(query, *args, **kwargs)

    monkeypatch.setattr(psycopg._queries, "_query2pg_nocache", spy)
    return parsed


def test_releasing_a_batch_of_successes_parses_its_statement_at_most_once(parsed_uncached):
    agents = [make_agent(f"released-{n}") for n in range(3)]
    Agent.objects.update(current_load=5)
    for _ in range(3):
        with transaction.atomic():
            capacity.release_successes(
                [(agent.agent_id, 12.5, "summarize") for agent in agents], now=timezone.now()
            )
    assert not [q for q in parsed_uncached if b"agents_agent" in q]
    # And it still did its work: three successes per agent, each slot freed.
    assert sorted(Agent.objects.values_list("current_load", "success_count")) == [(2, 3)] * 3


def test_one_line_keeps_a_statement_as_postgres_reads_it():
    sql = "SELECT 'a b',\n    x   FROM t\n\tWHERE y = %(y)s"
    assert one_line(sql) == "SELECT 'a b', x FROM t WHERE y = %(y)s"


def test_a_few_tasks_created_together_are_sent_without_rewriting_placeholders(parsed_uncached):
    # 28 parameters per task: the statement is written with $n placeholders instead.
    for size in (2, 3, services.INSERT_MAX_ROWS):
        items = [{"type": "summarize", "input_data": {"n": n}, "priority": 1 + n % 10} for n in range(size)]
        created = services.create_tasks_bulk(items=items)
        assert len(created) == size
    assert not [q for q in parsed_uncached if b"tasks_task" in q]
    stored = Task.objects.filter(type="summarize")
    assert stored.count() == 2 + 3 + services.INSERT_MAX_ROWS
    assert sorted(t.input_data["n"] for t in stored if t.priority == 3) == [2, 2, 12]
