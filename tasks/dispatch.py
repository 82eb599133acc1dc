"""The claim: pending tasks are matched to agents and assigned in one transaction.

Tasks are locked with `SELECT ... FOR UPDATE SKIP LOCKED` in priority order (1 first), then age, so any
number of dispatchers run side by side and none ever sees a task another has locked. Agent slots are
taken with a guarded increment (`current_load + n <= max_concurrency`), so two dispatchers can never
overfill an agent either; what does not fit stays pending for the next round.
"""

from collections import Counter
from dataclasses import dataclass, fields
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent, AgentStatus, CircuitState
from orchestrator_project.prepared import prepared_cursor

from .models import EventKind, Task, TaskStatus
from .strategies import get_strategy
from .transitions import TransitionLog


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
    probe: bool  # a half-open circuit's single probe: exactly one task, then nothing until it reports

    @property
    def free(self):
        return (1 if self.load == 0 else 0) if self.probe else self.max_concurrency - self.load


@dataclass
class Assignment:
    task_id: UUID
    attempt: int
    agent_id: UUID
    # What the runner needs to call the agent, read by the assigning UPDATE itself (runner.SPEC_COLUMNS
    # order), so a dispatch round does not read the tasks again; None for other callers.
    call: tuple | None = None


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


_TASK_FIELDS = tuple(field.name for field in fields(QueuedTask))
_QUEUED_COLUMNS = ", ".join(_TASK_FIELDS)
# Pending, auto-dispatched and due: what a round may take.
_DUE_SQL = "status = 'pending' AND auto_dispatch AND (next_attempt_at IS NULL OR next_attempt_at <= %s)"
# The queue in dispatch order, locked row by row; rows another round holds are skipped, not waited for.
_QUEUE_SQL = f"""
    SELECT {_QUEUED_COLUMNS} FROM tasks_task WHERE {_DUE_SQL}
    ORDER BY priority, created_at LIMIT %s FOR UPDATE SKIP LOCKED
"""
# The same for tasks named by the caller (a fresh bulk, say), due or not, auto-dispatched or not.
_CHOSEN_SQL = f"""
    SELECT {_QUEUED_COLUMNS} FROM tasks_task
    WHERE status = 'pending' AND task_id = ANY(%s)
    ORDER BY priority, created_at LIMIT %s FOR UPDATE SKIP LOCKED
"""


# Read by the assigning UPDATE for the runner (runner.spec_from_row): the task with its agent's address.
SPEC_COLUMNS = """t.task_id, t.attempts, t.assigned_agent_id, t.type, t.description, t.input_data,
    t.required_capabilities, t.priority, t.deadline, t.timeout_seconds, a.endpoint, a.signing_secret"""

# A round reads at most this many candidate agents per task waiting for a capability set (plus a few):
# placing 200 tasks must not mean reading 10,000 agents. The least loaded come first, so every strategy
# chooses among the agents with the most room.
CANDIDATES_PER_TASK = 2
CANDIDATES_MIN = 8


# Agents able to take work now, least filled first: a closed circuit with room, or an open circuit whose
# retry time has come (its single probe). Plain SQL: it runs once per capability set in every round.
_ELIGIBLE_SQL = """
    status = 'online' AND ((circuit_state = 'closed' AND current_load < max_concurrency)
                           OR (circuit_state = 'open' AND circuit_retry_at <= %s AND current_load = 0))
"""
_CANDIDATES_SQL = f"""
    SELECT agent_id, capabilities, current_load, max_concurrency, weight, avg_latency_ms, success_rate,
           circuit_state
    FROM agents_agent
    WHERE {_ELIGIBLE_SQL} AND capabilities @> %s::varchar[]
    ORDER BY current_load::double precision / max_concurrency, agent_id
    LIMIT %s
"""


_WORTH_A_ROUND_SQL = f"""
    SELECT EXISTS (SELECT 1 FROM agents_agent WHERE {_ELIGIBLE_SQL})
       AND EXISTS (SELECT 1 FROM tasks_task WHERE {_DUE_SQL})
"""


def _worth_a_round(now):
    """Whether some agent has room and some task is due: one read, no locks, no transaction."""
    with prepared_cursor() as cursor:
        cursor.execute(_WORTH_A_ROUND_SQL, [now, now])
        return cursor.fetchone()[0]


def _candidates(demand, now):
    """{capability set: agents able to serve it now}, one query per distinct set of the round.

    `demand` maps each required capability set to how many tasks of the round need it. An agent that
    serves several sets is one Candidate object in all of them, so the round's bookkeeping of its load
    stays right.
    """
    by_id, per_set = {}, {}
    with prepared_cursor() as cursor:
        for needed, count in demand.items():
            limit = count * CANDIDATES_PER_TASK + CANDIDATES_MIN
            cursor.execute(_CANDIDATES_SQL, [now, sorted(needed), limit])
            per_set[needed] = [
                by_id.setdefault(
                    r[0],
                    Candidate(r[0], frozenset(r[1]), r[2], r[3], r[4], r[5], r[6], r[7] == CircuitState.OPEN),
                )
                for r in cursor.fetchall()
            ]
    return per_set


def _plan(tasks, candidates):
    """Pick an agent for each task (in claim order) with the tasks' strategies; in memory only."""
    plan = []
    for task in tasks:
        able = [c for c in candidates[frozenset(task.required_capabilities)] if c.free > 0]
        if not able:
            continue
        # Retries prefer an agent that has not failed this task yet, when there is one.
        avoid = set(task.avoid_agents)
        fresh = [c for c in able if c.agent_id not in avoid] or able
        chosen = get_strategy(task.strategy).choose(task, fresh)
        chosen.load += 1
        plan.append((task, chosen))
    return plan


def _reserve_slots(plan, now):
    """Take the planned slots with guarded increments; returns the agent ids that accepted."""
    wanted = {}
    for _, candidate in plan:
        wanted.setdefault(candidate.agent_id, [candidate, 0])[1] += 1
    probes = [agent_id for agent_id, (c, _) in wanted.items() if c.probe]
    regular = [agent_id for agent_id, (c, _) in wanted.items() if not c.probe]
    accepted = set()
    with prepared_cursor() as cursor:
        # Locked in agent id order first, as outcomes lock them (outcomes._lock_agents): two rounds
        # cannot deadlock. Then one guarded UPDATE for all of them, not one statement per agent.
        cursor.execute(
            "SELECT 1 FROM agents_agent WHERE agent_id = ANY(%s::uuid[]) ORDER BY agent_id FOR UPDATE",
            [list(wanted)],
        )
        if regular:
            cursor.execute(
                """UPDATE agents_agent AS a SET current_load = a.current_load + v.n, updated_at = %s
                   FROM unnest(%s::uuid[], %s::int[]) AS v(agent_id, n)
                   WHERE a.agent_id = v.agent_id AND a.current_load + v.n <= a.max_concurrency
                     AND a.status = 'online' AND a.circuit_state = 'closed'
                   RETURNING a.agent_id""",
                [now, regular, [wanted[agent_id][1] for agent_id in regular]],
            )
            accepted.update(row[0] for row in cursor.fetchall())
        for agent_id in probes:
            # Open -> half-open exactly once: whoever flips it owns the single probe.
            cursor.execute(
                """UPDATE agents_agent SET circuit_state = 'half_open', current_load = current_load + 1,
                       updated_at = %s
                   WHERE agent_id = %s AND circuit_state = 'open' AND circuit_retry_at <= %s
                     AND status = 'online'""",
                [now, agent_id, now],
            )
            if cursor.rowcount == 1:
                accepted.add(agent_id)
    return accepted


def _assign(plan, accepted, now, log):
    rows = [(task, candidate) for task, candidate in plan if candidate.agent_id in accepted]
    if not rows:
        return []
    grace = settings.LEASE_GRACE_SECONDS
    with prepared_cursor() as cursor:
        cursor.execute(
            f"""UPDATE tasks_task AS t SET status = 'assigned', assigned_agent_id = v.agent_id,
                   attempts = t.attempts + 1, assigned_at = %s, next_attempt_at = NULL, updated_at = %s,
                   lease_expires_at = CASE WHEN t.auto_dispatch
                       THEN %s + make_interval(secs => t.timeout_seconds + %s) END
               FROM unnest(%s::uuid[], %s::uuid[]) AS v(task_id, agent_id)
                    JOIN agents_agent AS a ON a.agent_id = v.agent_id
               WHERE t.task_id = v.task_id AND t.status = 'pending'
               RETURNING {SPEC_COLUMNS}""",
            [now, now, now, grace, [t.task_id for t, _ in rows], [c.agent_id for _, c in rows]],
        )
        done = {r[0]: r for r in cursor.fetchall()}
    assignments = []
    for task, _ in rows:
        call = done.get(task.task_id)
        if call is None:
            continue
        attempt, agent_id = call[1], call[2]
        assignments.append(Assignment(task.task_id, attempt, agent_id, call))
        log.add(
            task_id=task.task_id,
            kind=EventKind.ASSIGNED,
            status=TaskStatus.ASSIGNED,
            attempt=attempt,
            agent_id=agent_id,
            at=now,
            priority=task.priority,
            task_type=task.type,
            capabilities=task.required_capabilities,
            reason=f"strategy {get_strategy(task.strategy).name}",
            queue_wait_seconds=(now - task.created_at).total_seconds(),
        )
    return assignments


def claim(*, limit=None, task_ids=None, now=None):
    """One dispatch round: lock due tasks, plan, reserve agent slots, assign. Returns the assignments.

    With `task_ids`, only those tasks are considered (an operator's assign or execute), whether or not
    they are auto-dispatched; otherwise the queue's due, auto-dispatched tasks are.
    """
    now = now or timezone.now()
    limit = limit or settings.DISPATCH_BATCH_SIZE
    if task_ids is None and not _worth_a_round(now):
        # Every agent is full, tripped or gone, or nothing is due. Locking a batch of tasks (a write per
        # row) only to put them back made each wake-up during a backlog cost as much as a real round,
        # and every freed slot with an empty queue cost a transaction.
        return []
    with transaction.atomic():
        with prepared_cursor() as cursor:
            if task_ids is None:
                cursor.execute(_QUEUE_SQL, [now, limit])
            else:
                cursor.execute(_CHOSEN_SQL, [[UUID(str(task_id)) for task_id in task_ids], limit])
            tasks = [QueuedTask(*row) for row in cursor.fetchall()]
        if not tasks:
            return []
        demand = Counter(frozenset(task.required_capabilities) for task in tasks)
        plan = _plan(tasks, _candidates(demand, now))
        if not plan:
            return []
        accepted = _reserve_slots(plan, now)
        log = TransitionLog()
        assignments = _assign(plan, accepted, now, log)
        log.flush()
    return assignments


def assign_to(task_id, agent, *, now=None):
    """An operator's explicit choice. Raises NoAgentAvailable with the reason the agent cannot take it."""
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
        refusal = refusal_reason(agent, task.required_capabilities, now)
        if refusal:
            raise NoAgentAvailable(refusal)
        candidate = Candidate(
            agent.agent_id,
            frozenset(agent.capabilities),
            agent.current_load,
            agent.max_concurrency,
            agent.weight,
            agent.avg_latency_ms,
            agent.success_rate,
            probe=False,
        )
        plan = [(task, candidate)]
        accepted = _reserve_slots(plan, now)
        if not accepted:
            raise NoAgentAvailable(
                f"agent {agent.agent_id} just became unavailable (full, offline or tripped)"
            )
        log = TransitionLog()
        assignments = _assign(plan, accepted, now, log)
        log.flush()
    return assignments[0] if assignments else None


def refusal_reason(agent, required_capabilities, now=None):
    """Why `agent` cannot take a task needing `required_capabilities` now, or "" if it can."""
    missing = sorted(set(required_capabilities) - set(agent.capabilities))
    if missing:
        return f"agent {agent.agent_id} lacks required capabilities: {', '.join(missing)}"
    if agent.status != AgentStatus.ONLINE:
        return f"agent {agent.agent_id} is {agent.status}"
    if agent.circuit_state != CircuitState.CLOSED:
        return f"agent {agent.agent_id} has its circuit breaker {agent.circuit_state.replace('_', '-')}"
    if agent.current_load >= agent.max_concurrency:
        return f"agent {agent.agent_id} is full ({agent.current_load}/{agent.max_concurrency} tasks)"
    return ""


def capable_agents_exist(required_capabilities, now=None):
    """Whether any agent could ever take such a task now or soon (online, capable, not tripped for good)."""
    now = now or timezone.now()
    return (
        Agent.objects.filter(status=AgentStatus.ONLINE, capabilities__contains=list(required_capabilities))
        .filter(
            Q(circuit_state__in=[CircuitState.CLOSED, CircuitState.HALF_OPEN])
            | Q(circuit_retry_at__lte=now + timedelta(seconds=settings.CIRCUIT_BREAKER_RECOVERY_TIMEOUT))
        )
        .exists()
    )


def start_lease(task_id, attempt, now=None):
    """Give an assigned task its lease (manual assignments wait without one until they are sent)."""
    now = now or timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(
            """UPDATE tasks_task SET lease_expires_at = %s + make_interval(secs => timeout_seconds + %s)
               WHERE task_id = %s AND attempts = %s AND status = 'assigned' AND lease_expires_at IS NULL""",
            [now, settings.LEASE_GRACE_SECONDS, task_id, attempt],
        )
