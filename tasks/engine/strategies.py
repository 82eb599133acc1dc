"""Load-balancing strategies: a small registry, one class each, one method.

`choose(task, candidates)` gets the agents able to take the task right now (capable, online, circuit
closed, with a free slot; `slots` already accounts for this round's earlier picks) and returns one.
"""

import itertools
import random
from abc import ABC, abstractmethod

from django.conf import settings


class Strategy(ABC):
    name = ""

    @abstractmethod
    def choose(self, task, candidates):
        """One of `candidates` (never empty) for `task`."""


class LeastConnections(Strategy):
    """The agent with the most free capacity relative to its size, then the least loaded."""

    name = "least_connections"

    def choose(self, task, candidates):
        return min(candidates, key=lambda c: (c.load / c.max_concurrency, c.load, c.agent_id))


class RoundRobin(Strategy):
    name = "round_robin"
    _counter = itertools.count()

    def choose(self, task, candidates):
        ordered = sorted(candidates, key=lambda c: c.agent_id)
        return ordered[next(self._counter) % len(ordered)]


class WeightedRoundRobin(Strategy):
    """Smooth weighted round robin (as in nginx): over time each agent gets its weight's share."""

    name = "weighted_round_robin"
    _current = {}

    def choose(self, task, candidates):
        total = sum(c.weight for c in candidates)
        for c in candidates:
            self._current[c.agent_id] = self._current.get(c.agent_id, 0) + c.weight
        best = max(candidates, key=lambda c: (self._current[c.agent_id], c.agent_id))
        self._current[best.agent_id] -= total
        return best


class Random(Strategy):
    name = "random"

    def choose(self, task, candidates):
        return random.choice(candidates)


class Fastest(Strategy):
    """Lowest expected latency, penalised by recent failures; unknown agents are tried first."""

    name = "fastest"

    def choose(self, task, candidates):
        def score(c):
            if c.avg_latency_ms is None:
                return (0.0, c.load)
            return (c.avg_latency_ms / max(c.success_rate, 0.05), c.load)

        return min(candidates, key=score)


STRATEGIES = {cls.name: cls() for cls in (LeastConnections, RoundRobin, WeightedRoundRobin, Random, Fastest)}


def get_strategy(name=None):
    return STRATEGIES.get(name or settings.LOAD_BALANCING_STRATEGY) or STRATEGIES["least_connections"]
