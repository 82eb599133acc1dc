"""The claim: one dispatch round matches pending tasks to agents and assigns them, in one transaction.

Tasks are locked with `SELECT ... FOR UPDATE SKIP LOCKED` in priority order (1 first), then age, so any
number of dispatchers run side by side and none ever sees a task another has locked. Agent slots are
taken through agents.capacity.reserve (guarded increments), so two dispatchers can never overfill an
agent either; what does not fit stays pending for the next round. A round never waits for a lock: an
agent whose row another transaction holds is planned around (`_place`). Which agents may take work at all
is agents.eligibility's rule; which of them gets a task is the task's strategy's choice.
"""

from collections import Counter
from dataclasses import dataclass, field, fields
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents import capacity, eligibility, routing
from orchestrator_project.prepared import prepared_cursor

from ..models import EventKind, Task, TaskStatus
from ..transitions import Step, move
from .callspec import CALL_EXPRESSIONS, CallSpec
from .strategies import get_strategy


@dataclass
class Candidate:
    """An agent as the strategies see it during one round."""

    agent_id: UUID
    capabilities: frozenset
    load: int
    max_concurrency: int
    weight: int
    avg_latency_ms: float | None
    success_rate: float
    probe: bool  # an open circuit's single probe: exactly one task, then nothing until it reports
    # What routing learned of it, per routing key of this round's capability sets (agents/routing.py).
    routes: dict = field(default_factory=dict)
    # Tasks of this round that a strategy left pending to wait for this (full) agent.
    waiting: int = 0
    # Another transaction holds its row (a batch of outcomes, until it commits): nothing for it this
    # round, and nothing to wait for either.
    held: bool = False

    @property
    def free(self):
        if self.held:
            return 0
        return (1 if self.load == 0 else 0) if self.probe else self.max_concurrency - self.load


@dataclass
class Assignment:
    task_id: UUID
    attempt: int
    agent_id: UUID
    call: CallSpec  # what the runner needs to call the agent, read by the assigning UPDATE itself


class NoAgentAvailable(Exception):
    pass


@dataclass(slots=True)
class QueuedTask:
    """What a dispatch round needs of a pending task: a round reads up to DISPATCH_BATCH_SIZE of them,
    and building model instances was half of the dispatcher's CPU."""

    task_id: UUID
    type: str
    priority: int
    required_capabilities: list
    avoid_agents: list
    strategy: str
    timeout_seconds: int
    attempts: int
    created_at: object
    auto_dispatch: bool
    failover_until: object = None


_TASK_FIELDS = tuple(field.name for field in fields(QueuedTask))
_QUEUED_COLUMNS = ", ".join(_TASK_FIELDS)
# Pending and auto-dispatched: the queue (the partial indexes task_dispatch_queue and
# task_pending_capabilities); and due: what a round may take.
_PENDING_SQL = f"status = '{TaskStatus.PENDING}' AND auto_dispatch"
_DUE_SQL = f"{_PENDING_SQL} AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)"
# What the fleet can take in this round, per set of capabilities offered: whether an able agent
# (ELIGIBLE_SQL) offers it, and the places of those agents and of the full ones with a closed circuit:
# each free slot, and a place in an agent's next turn of slots (adaptive leaves a task pending to wait
# for one: Adaptive.choose); a due probe is one place. Grouped, so each queued task is checked against
# the few distinct sets rather than every agent.
_ROOM_SQL = f"""
    SELECT capabilities, bool_or(able) AS able,
           sum(CASE WHEN circuit_state = 'closed' THEN GREATEST(2 * max_concurrency - current_load, 0)
                    ELSE 1 END) AS places,
           sum(CASE WHEN NOT able THEN 0 WHEN circuit_state = 'closed' THEN max_concurrency - current_load
                    ELSE 1 END) AS free
    FROM agents_agent, LATERAL (SELECT {eligibility.ELIGIBLE_SQL} AS able) AS eligible
    WHERE able OR {eligibility.ONLINE_SQL} AND circuit_state = 'closed'
    GROUP BY capabilities
"""
# The queue in dispatch order, locked row by row; rows another round holds are skipped, not waited for.
# Only tasks some able agent can serve (so tasks no free agent serves never hold up those behind
# them), and no more of them than the fleet has places for, plus ROUND_SPARE_TASKS for those a round
# skips (a failover that avoids the one free agent): during a backlog, locking DISPATCH_BATCH_SIZE tasks
# (a write per row) to place the one or two a freed slot allows was a round's largest cost.
# Each row also carries that limit and the fleet's free slots, so the round knows whether it saw the
# whole servable queue and whether agents outside its capability sets had room (`_room_left`).
_ROUND_LIMIT = "LEAST(%(limit)s, (SELECT COALESCE(sum(places), 0) FROM room) + %(spare)s)"
_QUEUE_SQL = f"""
    WITH room AS MATERIALIZED ({_ROOM_SQL})
    SELECT {_QUEUED_COLUMNS}, {_ROUND_LIMIT}, (SELECT COALESCE(sum(free), 0) FROM room)
    FROM tasks_task AS t
    WHERE {_DUE_SQL}
      AND EXISTS (SELECT 1 FROM room WHERE room.able AND room.capabilities @> t.required_capabilities)
    ORDER BY priority, created_at
    LIMIT {_ROUND_LIMIT}
    FOR UPDATE OF t SKIP LOCKED
"""
ROUND_SPARE_TASKS = 8
# The same for tasks named by the caller (an operator's assign), due or not, auto-dispatched or not.
_CHOSEN_SQL = f"""
    SELECT {_QUEUED_COLUMNS} FROM tasks_task
    WHERE status = '{TaskStatus.PENDING}' AND task_id = ANY(%(task_ids)s)
    ORDER BY priority, created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""

# Agents able to take work now, each with what routing learned of it on the round's capability set, in
# the same statement. Every eligible agent, or a uniform sample when there are more than
# ROUTING_CANDIDATE_SAMPLE: strategies must see the fleet as it is (reading only the least loaded made
# `fastest` and `adaptive` degrade into least-connections on a big fleet). Full agents with a closed
# circuit come too (they get nothing this round): `adaptive` weighs waiting for one of them.
_CANDIDATES_SQL = f"""
    SELECT a.agent_id, a.capabilities, a.current_load, a.max_concurrency, a.weight, a.avg_latency_ms,
           a.success_rate, a.circuit_state, r.latency_ms, r.success_rate, r.samples, r.updated_at
    FROM agents_agent AS a
    LEFT JOIN agents_agentroute AS r ON r.agent_id = a.agent_id AND r.capability = %(route_key)s
    WHERE ({eligibility.ELIGIBLE_SQL} OR {eligibility.ONLINE_SQL} AND a.circuit_state = 'closed')
      AND a.capabilities @> %(capabilities)s::varchar[]
    ORDER BY random()
    LIMIT %(limit)s
"""

# Whether a round now could place anything: a due task whose capability set some able agent offers.
# Asking only "is an agent free and a task due" made every wake-up read the whole queue whenever the
# free agents served none of it (one capability's agents full with a deep backlog, another's idle): the
# queue statement skips what no able agent serves, one task at a time, 51 ms for 50,000 pending. Here
# the pending tasks' distinct capability sets come from a skip scan of task_pending_capabilities, one
# index descent per set, and only the sets an able agent serves are looked into for a due task. Past
# MAX_CAPABILITY_SETS_LOOKED_AT sets (a queue of that many distinct sets is not one this was made for)
# it says yes, and the round reads the queue as before.
# The first EXISTS answers the commonest no (every agent full, during a backlog) in one read of the agents,
# and says which no it was: with no agent able to take work, no new task can be placed either until
# capacity changes (the dispatcher then skips creations' rings: Dispatcher.new_work). CASE, not AND:
# the second question is only asked when the first says yes.
MAX_CAPABILITY_SETS_LOOKED_AT = 1000
_WORTH_A_ROUND_SQL = f"""
    WITH RECURSIVE needed AS (
        (SELECT required_capabilities AS capabilities FROM tasks_task
         WHERE {_PENDING_SQL} ORDER BY required_capabilities LIMIT 1)
        UNION ALL
        SELECT (SELECT required_capabilities FROM tasks_task
                WHERE {_PENDING_SQL} AND required_capabilities > needed.capabilities
                ORDER BY required_capabilities LIMIT 1)
        FROM needed WHERE needed.capabilities IS NOT NULL
    ), sets AS (
        SELECT capabilities FROM needed WHERE capabilities IS NOT NULL  -- the last step found none
    )
    SELECT room, CASE WHEN room THEN (EXISTS (
        SELECT 1 FROM (SELECT capabilities FROM sets LIMIT {MAX_CAPABILITY_SETS_LOOKED_AT}) AS looked_at
        WHERE EXISTS (SELECT 1 FROM agents_agent
                      WHERE {eligibility.ELIGIBLE_SQL} AND capabilities @> looked_at.capabilities)
          AND EXISTS (SELECT 1 FROM tasks_task
                      WHERE required_capabilities = looked_at.capabilities AND {_DUE_SQL})
    ) OR EXISTS (SELECT 1 FROM sets OFFSET {MAX_CAPABILITY_SETS_LOOKED_AT})) ELSE false END,
    CASE WHEN room THEN NULL ELSE (
        SELECT min(circuit_retry_at) FROM agents_agent
        WHERE {eligibility.ONLINE_SQL} AND {eligibility.PROBE_WAITING_SQL}
    ) END
    FROM (SELECT EXISTS (SELECT 1 FROM agents_agent WHERE {eligibility.ELIGIBLE_SQL}) AS room) AS fleet
"""


def _worth_a_round(now):
    """(whether any agent can take work now, whether some due task is one such an agent serves, and with
    no room, when the first tripped circuit's probe falls due or None): one read, no locks, no
    transaction."""
    with prepared_cursor() as cursor:
        cursor.execute(_WORTH_A_ROUND_SQL, {"now": now})
        return cursor.fetchone()


def _candidates(demand, now):
    """{capability set: agents able to serve it now}, one query per distinct set of the round.

    `demand` maps each required capability set to how many tasks of the round need it. An agent that
    serves several sets is one Candidate object in all of them, so the round's bookkeeping of its load
    stays right; it carries what routing learned of it for each set.
    """
    by_id, per_set = {}, {}
    with prepared_cursor() as cursor:
        for needed, count in demand.items():
            key = routing.route_key(needed)
            params = {
                "now": now,
                "capabilities": sorted(needed),
                "route_key": key,
                "limit": max(settings.ROUTING_CANDIDATE_SAMPLE, count),
            }
            cursor.execute(_CANDIDATES_SQL, params)
            found = []
            for row in cursor.fetchall():
                candidate = by_id.setdefault(row[0], _candidate(row[:8]))
                if row[8] is not None or row[10] is not None:
                    candidate.routes[key] = routing.RouteState(*row[8:12])
                found.append(candidate)
            per_set[needed] = found
    return per_set


def _candidate(row):
    agent_id, capabilities, load, max_concurrency, weight, latency, success_rate, circuit_state = row
    probe = eligibility.is_probe_state(circuit_state)
    return Candidate(
        agent_id, frozenset(capabilities), load, max_concurrency, weight, latency, success_rate, probe
    )


class _Fleet:
    """One capability set's candidates during a plan: those with a free slot and those full (to weigh
    waiting for). Loads only grow while a plan is made, so the lists are made again only after a pick
    filled an agent, not for every task: on a fleet of a thousand agents, filtering it for each of a
    round's tasks cost more than everything else the round does."""

    def __init__(self, candidates):
        self.candidates = candidates
        self.listed_at = None  # the plan's count of agents filled when the lists were made

    def split(self, filled):
        if self.listed_at != filled:
            self.able = [c for c in self.candidates if c.free > 0]
            self.full = [c for c in self.candidates if c.free <= 0 and not c.probe and not c.held]
            self.listed_at = filled
        return self.able, self.full


def _plan(tasks, candidates, now):
    """Pick an agent for each task (in claim order) with the tasks' strategies; in memory only.

    Returns (task, candidate, why) triples: `why` is what the task's `assigned` event keeps of the
    choice (the strategy and the figures it chose on)."""
    plan = []
    fleets = {}
    filled = 0  # picks that left their agent with no free slot
    for task in tasks:
        needed = frozenset(task.required_capabilities)
        fleet = fleets.get(needed)
        if fleet is None:
            fleet = fleets[needed] = _Fleet(candidates[needed])
        able, full = fleet.split(filled)
        if not able:
            continue
        # Retries go to an agent that has not failed this task yet, when there is one; a prompt
        # failover waits for one (until its failover_until) rather than go back to an agent it left.
        avoid = set(task.avoid_agents)
        fresh = able
        if avoid:
            fresh = [c for c in able if c.agent_id not in avoid]
            if not fresh:
                if task.failover_until is not None and task.failover_until > now:
                    continue
                fresh = able
        strategy = get_strategy(task.strategy, task.required_capabilities)
        busy = ()
        if strategy.weighs_waiting:
            busy = [c for c in full if c.agent_id not in avoid] if avoid else full
        choice = strategy.choose(task, fresh, now, busy=busy)
        if choice.candidate is None:
            continue  # left pending: waiting for a busy agent is expected to finish it sooner
        why = {"strategy": strategy.name, "candidates": len(fresh), **choice.why}
        if len(fresh) < len(able):
            why["avoided"] = len(able) - len(fresh)
        choice.candidate.load += 1
        if choice.candidate.free <= 0:
            filled += 1
        plan.append((task, choice.candidate, why))
    return plan


def _reserve(plan, now, *, locked=False):
    """Take the planned slots; returns the ids of the agents that gave them. `locked`: the caller
    holds the agents' rows already."""
    slots = Counter(candidate.agent_id for _, candidate, _ in plan)
    probes = {candidate.agent_id for _, candidate, _ in plan if candidate.probe}
    return capacity.reserve(slots, probes=probes, now=now, locked=locked)


def _reserve_unheld(plan, now):
    """Take the planned slots on the agents no other transaction holds, without waiting for the rest
    (capacity.lock_unheld). Returns (the plan's entries that got their slot, those whose agent was
    held); the held agents are marked on their Candidate."""
    mine = capacity.lock_unheld(candidate.agent_id for _, candidate, _ in plan)
    taken = [entry for entry in plan if str(entry[1].agent_id) in mine]
    held = [entry for entry in plan if str(entry[1].agent_id) not in mine]
    for _, candidate, _ in held:
        candidate.held = True  # out of this round's choices (its load no longer matters)
    accepted = _reserve(taken, now, locked=True)
    return [entry for entry in taken if entry[1].agent_id in accepted], held


def _place(tasks, candidates, now):
    """Plan and take the slots. A task planned on an agent that a batch of outcomes holds is planned
    again, once, among the agents left (a round never waits for an agent's row: that wait was most
    of a busy dispatcher's time, and it sat on every task of the round). Returns (the placed plan,
    whether a held agent left some task unplaced)."""
    placed, held = _reserve_unheld(_plan(tasks, candidates, now), now)
    if not held:
        return placed, False
    bumped = [task for task, _, _ in held]
    again, _ = _reserve_unheld(_plan(bumped, candidates, now), now)
    return placed + again, len(again) < len(bumped)


# The assignment: a fresh attempt with its agent, and (for auto-dispatched tasks) a lease that the
# sweep expires if no answer is recorded in time. The rows are locked by the claim, so unfenced.
_ASSIGN = """assigned_agent_id = v.agent_id, attempts = t.attempts + 1, assigned_at = %(now)s,
    next_attempt_at = NULL, failover_until = NULL,
    lease_expires_at = CASE WHEN t.auto_dispatch
        THEN %(now)s + make_interval(secs => t.timeout_seconds + %(grace)s) END"""


def _assign(plan, now):
    steps = [
        Step(task.task_id, agent_id=candidate.agent_id, reason=f"strategy {why['strategy']}", details=why)
        for task, candidate, why in plan
    ]
    moved = move(
        EventKind.ASSIGNED,
        steps,
        now=now,
        assignments=_ASSIGN,
        params={"grace": settings.LEASE_GRACE_SECONDS},
        fenced=False,
        join="JOIN agents_agent AS a ON a.agent_id = v.agent_id",
        returning=CALL_EXPRESSIONS,
    )
    # Claim order: the most urgent are called first.
    order = {task.task_id: (task.priority, task.created_at) for task, _, _ in plan}
    moved.sort(key=lambda m: order[m.task_id])
    return [Assignment(m.task_id, m.attempt, m.step.agent_id, CallSpec.from_row(m.returned)) for m in moved]


def claim(*, limit=None, task_ids=None, now=None, on_held=None, on_room_left=None, on_fleet_full=None):
    """One dispatch round: lock due tasks, plan, reserve agent slots, assign. Returns the assignments.

    With `task_ids`, only those tasks are considered (an operator's assign), whether or not they are
    auto-dispatched; otherwise the queue's due, auto-dispatched tasks that some able agent serves,
    as many as the fleet has places for (`_QUEUE_SQL`). `on_held()` is called when agents that other
    transactions held left tasks pending (see `_place`): a round soon will find them free.
    `on_room_left()` is called when a round now may place more (see `_room_left`).
    `on_fleet_full(probe_at)` is called when no agent at all can take work (full, tripped or gone):
    nothing can be placed until that changes, or until `probe_at` (a tripped circuit's probe; or None).
    """
    now = now or timezone.now()
    if task_ids is None:
        room, worth, probe_at = _worth_a_round(now)
        if not room and on_fleet_full is not None:
            on_fleet_full(probe_at)
        if not worth:
            # Every agent is full, tripped or gone, or nothing is due. Locking a batch of tasks (a write
            # per row) only to put them back made each wake-up during a backlog cost as much as a real
            # round, and every freed slot with an empty queue cost a transaction.
            return []
    with transaction.atomic():
        return claim_within(
            limit=limit, task_ids=task_ids, now=now, on_held=on_held, on_room_left=on_room_left
        )


def claim_within(*, now, limit=None, task_ids=None, on_held=None, on_room_left=None):
    """`claim`'s round inside the caller's transaction, without first asking whether it is worth one:
    for a caller that has just freed slots (the writer, whose outcomes may also have made the next
    steps' tasks). The assignments take effect when that transaction commits; only then may their
    calls start. `on_room_left()` is called when another round now may place more (`_room_left`)."""
    limit = limit or settings.DISPATCH_BATCH_SIZE
    cut, free_slots = False, 0  # an operator's chosen tasks are never cut short
    with prepared_cursor() as cursor:
        if task_ids is None:
            cursor.execute(_QUEUE_SQL, {"now": now, "limit": limit, "spare": ROUND_SPARE_TASKS})
            rows = cursor.fetchall()
            if rows:
                cut, free_slots = len(rows) >= rows[0][-2], rows[0][-1]
            tasks = [QueuedTask(*row[:-2]) for row in rows]
        else:
            chosen = [UUID(str(task_id)) for task_id in task_ids]
            cursor.execute(_CHOSEN_SQL, {"task_ids": chosen, "limit": limit})
            tasks = [QueuedTask(*row) for row in cursor.fetchall()]
    if not tasks:
        return []
    demand = Counter(frozenset(task.required_capabilities) for task in tasks)
    candidates = _candidates(demand, now)
    placed, held = _place(tasks, candidates, now)
    if held and on_held is not None:
        on_held()
    if cut and on_room_left is not None and _room_left(tasks, placed, candidates, free_slots):
        on_room_left()
    return _assign(placed, now) if placed else []


def _room_left(tasks, placed, candidates, free_slots):
    """Whether a round that stopped at its limit may have left tasks behind it that a free agent could
    take now: some of its tasks found every agent of their capability set full (none held), while the
    fleet had more free slots (`free_slots`, as the round began) than the round filled. The next
    round's queue leaves out the tasks no able agent serves, so it reaches those behind them. (Tasks
    left pending by choice, to wait for a busy agent or for a failover's other agents, do not count: a
    round now would choose the same.)"""
    done = {task.task_id for task, _, _ in placed}
    starved = any(
        not any(c.free > 0 or c.held for c in candidates[frozenset(task.required_capabilities)])
        for task in tasks
        if task.task_id not in done
    )
    return starved and free_slots > len(placed)


def assign_to(task_id, agent, *, now=None):
    """An operator's explicit choice. Raises NoAgentAvailable with the reason the agent cannot take it;
    returns None if the task is no longer pending."""
    now = now or timezone.now()
    with transaction.atomic():
        task = (
            Task.objects.select_for_update()
            .filter(task_id=task_id, status=TaskStatus.PENDING)
            .only(*_TASK_FIELDS)
            .first()
        )
        if task is None:
            return None
        refusal = eligibility.refusal(agent, now, task.required_capabilities)
        if refusal:
            raise NoAgentAvailable(refusal)
        candidate = _candidate(
            (
                agent.agent_id,
                agent.capabilities,
                agent.current_load,
                agent.max_concurrency,
                agent.weight,
                agent.avg_latency_ms,
                agent.success_rate,
                agent.circuit_state,
            )
        )
        plan = [(task, candidate, {"strategy": "operator"})]
        accepted = _reserve(plan, now)
        if not accepted:
            raise NoAgentAvailable(
                f"agent {agent.agent_id} just became unavailable (full, offline or tripped)"
            )
        assignments = _assign(plan, now)
    return assignments[0] if assignments else None


_LEASE_SQL = f"""UPDATE tasks_task
    SET lease_expires_at = %(now)s + make_interval(secs => timeout_seconds + %(grace)s)
    WHERE task_id = %(task_id)s AND attempts = %(attempt)s AND status = '{TaskStatus.ASSIGNED}'
      AND lease_expires_at IS NULL"""
_CALL_SQL = f"""
    SELECT {", ".join(CALL_EXPRESSIONS)}
    FROM tasks_task t JOIN agents_agent a ON a.agent_id = t.assigned_agent_id
    WHERE t.task_id = %(task_id)s AND t.attempts = %(attempt)s AND t.status = '{TaskStatus.ASSIGNED}'
"""


def start_assigned(task_id, attempt, now=None):
    """An assigned task that waited without a lease (an operator's assignment of a task that is not
    auto-dispatched) is about to be sent: give it its lease and return its CallSpec, or None if that
    attempt is no longer assigned."""
    now = now or timezone.now()
    params = {"now": now, "grace": settings.LEASE_GRACE_SECONDS, "task_id": task_id, "attempt": attempt}
    with prepared_cursor() as cursor:
        cursor.execute(_LEASE_SQL, params)
        cursor.execute(_CALL_SQL, params)
        row = cursor.fetchone()
    return None if row is None else CallSpec.from_row(row)
