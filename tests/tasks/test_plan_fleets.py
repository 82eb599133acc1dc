"""A round's plan lists each capability set's agents once and again only after a pick filled one: an
agent filled through one capability set is never offered to the next task of another."""

import copy
import itertools
import random
import uuid

import pytest
from django.utils import timezone

from tasks.engine.claim import Candidate, QueuedTask, _plan
from tasks.engine.strategies import STRATEGIES


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


@pytest.mark.parametrize("strategy", ["least_connections", "fastest", "round_robin"])
def test_a_round_chooses_as_a_scan_of_every_candidate_for_every_task_would(strategy):
    # The strategies keep what they worked out about a round's candidate list while they are given the
    # same list (a heap of keys that only grow, a sorted order): the picks must be a plain scan's.
    rng = random.Random(7)
    fleet = [
        agent(n, capabilities={"a"}, slots=rng.choice([1, 2, 4, 8]), latency=rng.choice([None, 50.0, 80.0]))
        for n in range(1, 301)
    ]
    for candidate in fleet:
        candidate.load = rng.randrange(candidate.max_concurrency)
        candidate.success_rate = rng.choice([1.0, 0.9, 0.5])
    ids = [c.agent_id for c in fleet]
    tasks = [task({"a"}, strategy) for _ in range(600)]
    for queued in tasks[::7]:  # retries: a list of their own, interleaved with the round's shared one
        queued.avoid_agents = rng.sample(ids, 3)
    expected = _scan_plan(tasks, copy.deepcopy(fleet), strategy)

    plan = _plan(tasks, {frozenset({"a"}): fleet}, timezone.now())

    assert [chosen.agent_id for _, chosen, _ in plan] == expected
    assert len(expected) > 300  # the fleet filled up along the way: lists were made again


def _scan_plan(tasks, fleet, strategy):
    keys = {
        "least_connections": lambda c: (c.load / c.max_concurrency, c.load, c.agent_id),
        "fastest": lambda c: (
            (0.0, c.load)
            if c.avg_latency_ms is None
            else (c.avg_latency_ms / max(c.success_rate, 0.05), c.load)
        ),
    }
    turns = itertools.count(next(copy.copy(STRATEGIES["round_robin"]._counter)))
    chosen_ids = []
    for queued in tasks:
        able = [c for c in fleet if c.free > 0]
        if not able:
            break
        avoid = set(queued.avoid_agents)
        fresh = [c for c in able if c.agent_id not in avoid] or able
        if strategy == "round_robin":
            ordered = sorted(fresh, key=lambda c: c.agent_id)
            chosen = ordered[next(turns) % len(ordered)]
        else:
            chosen = min(fresh, key=keys[strategy])
        chosen.load += 1
        chosen_ids.append(chosen.agent_id)
    return chosen_ids
