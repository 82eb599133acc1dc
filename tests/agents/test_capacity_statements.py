"""The outcome writer's agent statement is built once and parsed once.

psycopg parses a statement's placeholders again at every execution when its text is longer than 4,096
characters; the writer's release of a batch's agents, indented, was, once per batch.
"""

import psycopg._queries
import pytest
from django.db import transaction
from django.utils import timezone

from agents import capacity
from agents.models import Agent
from orchestrator_project.prepared import one_line

from .conftest import make_agent

pytestmark = pytest.mark.django_db


def test_releasing_a_batch_of_successes_parses_its_statement_at_most_once(monkeypatch):
    agents = [make_agent(f"released-{n}") for n in range(3)]
    Agent.objects.update(current_load=5)
    parsed_uncached = []
    parse = psycopg._queries._query2pg_nocache

    def spy(query, *args, **kwargs):
        parsed_uncached.append(bytes(query))
        return parse(query, *args, **kwargs)

    monkeypatch.setattr(psycopg._queries, "_query2pg_nocache", spy)
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
