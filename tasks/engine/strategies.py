"""Load-balancing strategies: a small registry, one class each, one method (docs/routing.md).

`choose(task, candidates, now)` gets the agents able to take the task right now (capable, online, circuit
closed, with a free slot; `load` already counts this round's earlier picks; agents the task already
failed on are left out while there are others) and returns a Choice: the agent, and the figures it was
chosen on, which the task's `assigned` event keeps ("why this agent").
"""

import heapq
import itertools
import math
import random
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from django.conf import settings

from agents import routing


@dataclass
class Choice:
    candidate: object
    why: dict = field(default_factory=dict)


class Strategy(ABC):
    name = ""
    # Whether `choose` wants the capable agents that are full now (`busy`), to weigh waiting for one.
    weighs_waiting = False

    @abstractmethod
    def choose(self, task, candidates, now, busy=()):
        """A Choice of one of `candidates` (never empty) for `task`, in the round that runs at `now`; or
        a Choice of None to leave the task pending this round (only strategies that weigh waiting)."""


def _load(c):
    return {"load": c.load, "max_concurrency": c.max_concurrency}


class _RoundMemo(threading.local):
    """What a strategy worked out about the candidate list it was last given, kept while it is given
    the same list again.

    A dispatch round hands a strategy the very same list object task after task (claim._Fleet makes a
    new one only when a pick filled an agent), and within a round agents' loads only grow. Walking the
    whole list for every task cost most of a round on a fleet of a thousand agents. Per thread: a web
    process's threads may each run a round (an operator's assign)."""

    def __init__(self):
        self.candidates = None
        self.value = None

    def get(self, candidates, make):
        if candidates is not self.candidates:
            self.candidates, self.value = candidates, make(candidates)
        return self.value


class _GrowingMin:
    """min(candidates, key=key) task after task of a round, in O(log n) each instead of O(n).

    Keys only grow during a round (they rise with an agent's load), so a heap of the keys as last seen
    stays right if read lazily: an entry whose agent's key grew since is pushed back with its new key,
    and the first entry found current is the minimum. Entries are (key, position), so ties go to the
    earlier candidate, as with min(). A list seen once gets a plain min(): heapifying costs as much."""

    def __init__(self, key):
        self.key = key
        self._memo = _RoundMemo()

    def __call__(self, candidates):
        memo = self._memo
        if candidates is not memo.candidates:
            memo.candidates, memo.value = candidates, None
            return min(candidates, key=self.key)
        if memo.value is None:
            memo.value = [(self.key(c), i) for i, c in enumerate(candidates)]
            heapq.heapify(memo.value)
        heap = memo.value
        while True:
            seen, position = heap[0]
            current = self.key(candidates[position])
            if current == seen:
                return candidates[position]
            heapq.heapreplace(heap, (current, position))


class LeastConnections(Strategy):
    """The agent with the most free capacity relative to its size, then the least loaded."""

    name = "least_connections"

    def __init__(self):
        self._least_loaded = _GrowingMin(lambda c: (c.load / c.max_concurrency, c.load, c.agent_id))

    def choose(self, task, candidates, now, busy=()):
        chosen = self._least_loaded(candidates)
        return Choice(chosen, _load(chosen))


class RoundRobin(Strategy):
    name = "round_robin"
    _counter = itertools.count()

    def __init__(self):
        self._ordered = _RoundMemo()

    def choose(self, task, candidates, now, busy=()):
        ordered = self._ordered.get(candidates, lambda found: sorted(found, key=lambda c: c.agent_id))
        turn = next(self._counter) % len(ordered)
        return Choice(ordered[turn], {"turn": turn})


class WeightedRoundRobin(Strategy):
    """Smooth weighted round robin (as in nginx): over time each agent gets its weight's share.

    The running counters are per process and forget agents that have not been candidates for a while
    (pruned when the table outgrows the fleet it sees), so removed agents do not accumulate."""

    name = "weighted_round_robin"
    _current = {}

    def choose(self, task, candidates, now, busy=()):
        if len(self._current) > 4 * len(candidates) + 64:
            present = {c.agent_id for c in candidates}
            for agent_id in [a for a in self._current if a not in present]:
                del self._current[agent_id]
        total = sum(c.weight for c in candidates)
        for c in candidates:
            self._current[c.agent_id] = self._current.get(c.agent_id, 0) + c.weight
        best = max(candidates, key=lambda c: (self._current[c.agent_id], c.agent_id))
        self._current[best.agent_id] -= total
        return Choice(best, {"weight": best.weight, "total_weight": total})


class Random(Strategy):
    name = "random"

    def choose(self, task, candidates, now, busy=()):
        return Choice(random.choice(candidates))


class Fastest(Strategy):
    """Lowest expected latency, penalised by recent failures; unknown agents are tried first."""

    name = "fastest"

    def __init__(self):
        self._best = _GrowingMin(_fastest_score)

    def choose(self, task, candidates, now, busy=()):
        chosen = self._best(candidates)
        return Choice(
            chosen,
            {
                "score_ms": _round(_fastest_score(chosen)[0]),
                "avg_latency_ms": _round(chosen.avg_latency_ms),
                "success_rate": _round(chosen.success_rate),
            },
        )


def _fastest_score(c):
    if c.avg_latency_ms is None:
        return (0.0, c.load)
    return (c.avg_latency_ms / max(c.success_rate, 0.05), c.load)


def _round(value):
    return None if value is None else round(value, 3)


class Adaptive(Strategy):
    """The lower expected cost of two agents drawn at random among the cheaper part of the free ones
    (power of two choices), with what each agent learned on the task's capability (agents/routing.py),
    unless waiting for a busy agent is expected to finish the task sooner. Two random draws rather than
    the best of all: many dispatchers acting on the same, slightly stale figures would all pile onto the
    one best agent. Drawn among the cheaper part (ROUTING_PAIR_SHARE of them, at least two) rather than
    among all: a pair of two poor agents sends one of them work that a good free agent would have done
    better, and with retries in the tail that is what set adaptive's p99 (docs/routing.md). Agents with
    fewer than ROUTING_WARMUP_SAMPLES samples are counted at the capability's median and also get
    ROUTING_EXPLORE_SHARE of the choices, so new agents are learned quickly."""

    name = "adaptive"
    weighs_waiting = True

    def __init__(self):
        self._pair_pool = _RoundMemo()

    # The capability's medians, computed once per round (its clock) and capability, over the agents its
    # first task saw: a round places up to DISPATCH_BATCH_SIZE tasks among the same agents, and sorting a
    # thousand figures per task would cost more than the rest of the choice.
    _medians = {}

    def _medians_for(self, key, now, agents):
        cache_key = (key, now)
        found = self._medians.get(cache_key)
        if found is None:
            known = [s for c in agents if (s := c.routes.get(key)) is not None and s.latency_ms is not None]
            found = (
                routing.median(s.latency_ms for s in known),
                routing.median(s.success_rate for s in known) or 1.0,
            )
            if len(self._medians) > 64:
                self._medians.clear()
            self._medians[cache_key] = found
        return found

    def choose(self, task, candidates, now, busy=()):
        # Nothing here walks all the candidates for every task (a round places up to
        # DISPATCH_BATCH_SIZE tasks among up to ROUTING_CANDIDATE_SAMPLE agents): the medians once per
        # round, the warming agents only when this choice explores.
        key = routing.route_key(task.required_capabilities)
        median_latency, median_success = self._medians_for(key, now, itertools.chain(candidates, busy))

        def figures(c):
            latency, success = routing.estimate(
                c.routes.get(key), median_latency=median_latency, median_success=median_success, now=now
            )
            return latency or 1.0, success

        def cost_now(c):
            return routing.expected_cost(*figures(c), c.load, c.max_concurrency)

        def score(c):
            latency, success = figures(c)  # once: cost_now(c) would estimate them again
            state = c.routes.get(key)
            return {
                "agent_id": str(c.agent_id),
                "cost_ms": round(routing.expected_cost(latency, success, c.load, c.max_concurrency), 3),
                "latency_ms": _round(latency),
                "success_rate": round(success, 4),
                "load": c.load,
                "max_concurrency": c.max_concurrency,
                "samples": 0 if state is None else state.samples,
            }

        why = {"capability": key, "median_latency_ms": _round(median_latency)}
        if random.random() < settings.ROUTING_EXPLORE_SHARE:
            # Exploration is for agents the model knows too little of that could be good: an agent whose
            # few samples already cost more than the median is left to the ordinary choice (on a big
            # fleet the slow agents, which get few calls, stayed "warming" longest and took most of the
            # exploration share). Its figures drift back to the median while it idles, so it is tried
            # again in time.
            median_cost = routing.expected_cost(median_latency or 1.0, median_success, 0, 1)
            warming = [
                c
                for c in candidates
                if (s := c.routes.get(key)) is None
                or s.samples < settings.ROUTING_WARMUP_SAMPLES
                and routing.expected_cost(*figures(c), 0, 1) <= median_cost
            ]
            if warming and len(warming) < len(candidates):
                chosen = random.choice(warming)
                return Choice(chosen, {**why, "rule": "explore", "scores": [score(chosen)]})
        if len(candidates) == 1:
            chosen, scores, rule = candidates[0], [score(candidates[0])], "only"
        else:
            pool = self._pair_pool.get(candidates, lambda found: _cheaper_part(found, cost_now))
            pair = random.sample(pool, 2)
            scores = [score(c) for c in pair]
            best = min((0, 1), key=lambda i: (scores[i]["cost_ms"], pair[i].load))
            chosen, scores, rule = pair[best], [scores[best], scores[1 - best]], "power_of_two"
            why["pool"] = len(pool)
        # Waiting is weighed only for a place in the next turn of a busy agent's slots: a longer queue
        # would idle agents the fleet needs when it runs near its capacity.
        busy = [b for b in busy if max(b.load - b.max_concurrency, 0) + b.waiting < b.max_concurrency]
        if busy:
            waited = min(busy, key=lambda b: self._waiting_cost(b, *figures(b)))
            if self._waiting_cost(waited, *figures(waited)) < scores[0]["cost_ms"]:
                waited.waiting += 1
                return Choice(None)
        return Choice(chosen, {**why, "rule": rule, "scores": scores})

    @staticmethod
    def _waiting_cost(agent, latency, success):
        """Expected time to a success when the task waits for this full agent: its slots free one every
        latency / slots on average, the tasks already waiting for it go first, and it then runs as the
        agent's last slot."""
        ahead = max(agent.load - agent.max_concurrency, 0) + agent.waiting
        wait = (ahead + 1) * latency / agent.max_concurrency
        return wait + routing.expected_cost(
            latency, success, agent.max_concurrency - 1, agent.max_concurrency
        )


def _cheaper_part(candidates, cost):
    """The ROUTING_PAIR_SHARE of `candidates` (at least two) with the lowest `cost`, in their order.

    Taken when the round makes its list of free agents, which it makes again after every pick that
    fills an agent: within a list's life the picks' load raises their agents' cost, and the pair's
    comparison, which reads the cost afresh, sees that."""
    keep = max(2, math.ceil(len(candidates) * settings.ROUTING_PAIR_SHARE))
    if keep >= len(candidates):
        return candidates
    costs = [cost(c) for c in candidates]
    cut = sorted(costs)[keep - 1]
    # Ties at the cut stay in (a fleet of agents never seen all cost the median): none is preferred
    # over another for its place in the list.
    return [c for c, own in zip(candidates, costs, strict=True) if own <= cut]


STRATEGIES = {
    cls.name: cls() for cls in (LeastConnections, RoundRobin, WeightedRoundRobin, Random, Fastest, Adaptive)
}


def get_strategy(name=None, capabilities=()):
    """The strategy named (a task's own choice), else the first of `capabilities` (sorted) that
    ROUTING_STRATEGY_BY_CAPABILITY maps, else LOAD_BALANCING_STRATEGY."""
    if not name:
        per_capability = settings.ROUTING_STRATEGY_BY_CAPABILITY
        name = next((per_capability[c] for c in sorted(capabilities) if c in per_capability), None)
    return STRATEGIES.get(name or settings.LOAD_BALANCING_STRATEGY) or STRATEGIES["least_connections"]
