"""The live `agents` stream carries an agent's load going up (slots taken by a dispatch round), not only
coming down: the dashboard's load column showed 0 / 3 while the agent ran three tasks."""

import pytest
from django.db import transaction
from django.utils import timezone

from agents import capacity
from agents.models import Agent
from orchestrator_project import live
from tests.agents.conftest import make_agent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch):
    batches = []
    monkeypatch.setattr(live, "publish_agent_changes", batches.append)
    return batches


def test_taking_slots_sends_the_new_load_once_the_round_commits(sent):
    alice = make_agent("alice", max_concurrency=3)
    sent.clear()  # registration's own

    with transaction.atomic():
        assert capacity.reserve({alice.pk: 2}, probes=set(), now=timezone.now()) == {alice.pk}
        assert sent == []  # nothing before the commit

    [[change]] = sent
    assert (change["agent_id"], change["name"], change["current_load"], change["max_concurrency"]) == (
        str(alice.pk),
        "alice",
        2,
        3,
    )


def test_nothing_is_sent_for_slots_not_taken_or_rolled_back(sent):
    full = make_agent("full", max_concurrency=1)
    Agent.objects.filter(pk=full.pk).update(current_load=1)
    free = make_agent("free", max_concurrency=1)
    sent.clear()

    with transaction.atomic():
        assert capacity.reserve({full.pk: 1}, probes=set(), now=timezone.now()) == set()
    with transaction.atomic():
        capacity.reserve({free.pk: 1}, probes=set(), now=timezone.now())
        transaction.set_rollback(True)

    assert sent == []
