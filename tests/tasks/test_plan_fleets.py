"""A round's plan lists each capability set's agents once and again only after a pick filled one: an
agent filled through one capability set is never offered to the next task of another."""

import uuid

from django.utils import timezone

from tasks.engine.claim import Candidate, QueuedTask, _plan


def agent(n, *, capabilities, slots, latency):
    return Candidate(uuid.UUID(int=n), frozenset(capabilities), 0, slots, 1, latency, 1.0, False)


def task(capabilities, strategy):
    return QueuedTask(uuid.uuid4(), "t", 5, list(capabilities), [], strategy, 60, 0, timezone.now(), True)


def test_an_agent_filled_through_one_capability_set_is_not_offered_in_another():
    spare = agent(
        1, capabilities={"a", "b"}, slots=5, latency=100.0
    )  # the smaller id: least_connections' tie
    fast = agent(2, capabilities={"a", "b"}, slots=1, latency=10.0)
    candidates = {frozenset({"b"}): [spare, fast], frozenset({"a", "b"}): [fast]}
    tasks = [
        task({"b"}, "least_connections"),  # lists {"b"}'s agents; takes the spare one
        task({"a", "b"}, "least_connections"),  # fills the fast one, its one slot
        task({"b"}, "fastest"),  # would take the fast one, were {"b"}'s list not made again
    ]
    plan = _plan(tasks, candidates, timezone.now())
    assert [chosen.agent_id for _, chosen, _ in plan] == [spare.agent_id, fast.agent_id, spare.agent_id]
    assert fast.load == fast.max_concurrency
