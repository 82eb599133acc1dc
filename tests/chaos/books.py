"""The books every scenario is checked against, whatever fault it injected.

- every accepted task reaches exactly one terminal state (nothing left pending, assigned or running);
- no result is accepted twice: exactly one `completed` event per completed task, none for the others;
- no agent saw more calls for a task than the task made attempts, nor one attempt twice;
- a completed task holds the answer of its last attempt (a superseded attempt's answer changed nothing);
- nothing stays in flight past its lease, and no agent keeps a slot for a finished task.
"""

from collections import Counter
from dataclasses import asdict, dataclass

from django.db import OperationalError, connection
from django.db.models import Count, Q
from django.db.utils import InterfaceError
from django.utils import timezone

from agents.models import Agent
from tasks.models import IN_FLIGHT_STATUSES, TERMINAL_STATUSES, Task, TaskEvent, TaskStatus
from tests.tasks.conftest import wait_until

from .plugin import measurements


@dataclass
class Books:
    submitted: int
    completed: int
    failed: int
    lost: int
    duplicate_results: int
    agent_calls: int
    attempts: int
    retries: int
    hand_backs: int
    leases_expired: int


def db_tolerant(predicate):
    """`predicate`, but a dropped database connection (a restart in progress) counts as "not yet"."""

    def poll():
        try:
            return predicate()
        except (OperationalError, InterfaceError):
            connection.close()
            return False

    return poll


def wait_for(predicate, *, timeout, message, interval=0.1):
    return wait_until(db_tolerant(predicate), timeout=timeout, interval=interval, message=message)


def terminal_count():
    return Task.objects.filter(status__in=TERMINAL_STATUSES).count()


def wait_until_all_terminal(total, *, timeout):
    return wait_for(
        lambda: terminal_count() >= total, timeout=timeout, message=f"all {total} tasks to finish"
    )


def check_books(agents, *, expect_completed=True):
    """Check every task in the database against the rules above; returns the Books."""
    now = timezone.now()
    tasks = {str(t.task_id): t for t in Task.objects.all()}
    events = Counter(
        (str(task_id), kind)
        for task_id, kind in TaskEvent.objects.filter(
            kind__in=["completed", "failed", "cancelled"]
        ).values_list("task_id", "kind")
    )
    # A request cut off mid-body by a killed worker fails the agent's signature check and is never run.
    calls = [c for agent in agents for c in agent.calls if c.path.endswith("/execute") and c.signature_valid]
    calls_per_task = Counter(c.body["task_id"] for c in calls)
    calls_per_attempt = Counter((c.body["task_id"], c.body["attempt"]) for c in calls)
    problems = []

    not_terminal = [t for t in tasks.values() if t.status not in TERMINAL_STATUSES]
    if not_terminal:
        problems.append(f"{len(not_terminal)} tasks never finished, e.g. {not_terminal[:3]}")
    if expect_completed:
        failed = [t for t in tasks.values() if t.status != TaskStatus.COMPLETED]
        if failed:
            problems.append(
                f"{len(failed)} tasks did not complete, e.g. {[(t, t.error) for t in failed[:3]]}"
            )
    duplicates = sum(max(0, events[(task_id, "completed")] - 1) for task_id in tasks)
    for task_id, task in tasks.items():
        finals = {kind: events[(task_id, kind)] for kind in ("completed", "failed", "cancelled")}
        if task.is_terminal and (finals.get(task.status) != 1 or sum(finals.values()) != 1):
            problems.append(f"task {task_id} is {task.status} with terminal events {finals}")
        if calls_per_task[task_id] > task.attempts:
            problems.append(
                f"task {task_id}: {calls_per_task[task_id]} agent calls for {task.attempts} attempts"
            )
        if task.status == TaskStatus.COMPLETED and isinstance(task.result, dict) and "attempt" in task.result:
            if task.result["attempt"] != task.attempts:
                problems.append(
                    f"task {task_id} kept attempt {task.result['attempt']}'s result, not its last"
                )
    twice = [key for key, count in calls_per_attempt.items() if count > 1]
    if twice:
        problems.append(f"{len(twice)} attempts were sent twice, e.g. {twice[:3]}")
    stray = [c.body["task_id"] for c in calls if c.body["task_id"] not in tasks]
    if stray:
        problems.append(f"agents were called for unknown tasks {stray[:3]}")
    overdue = Task.objects.filter(status__in=IN_FLIGHT_STATUSES, lease_expires_at__lt=now).count()
    if overdue:
        problems.append(f"{overdue} tasks are still in flight past their lease")
    if not not_terminal:
        loaded = list(Agent.objects.exclude(current_load=0).values_list("name", "current_load"))
        if loaded:
            problems.append(f"agents hold slots for finished tasks: {loaded[:5]}")
    assert not problems, "the books do not balance:\n" + "\n".join(problems)

    kinds = TaskEvent.objects.aggregate(
        retries=Count("id", filter=Q(kind="retrying")),
        hand_backs=Count("id", filter=Q(kind="reassigned")),
        leases_expired=Count("id", filter=Q(kind="retrying", reason__startswith="lease expired")),
    )
    statuses = Counter(t.status for t in tasks.values())
    return Books(
        submitted=len(tasks),
        completed=statuses[TaskStatus.COMPLETED],
        failed=statuses[TaskStatus.FAILED],
        lost=len(not_terminal),
        duplicate_results=duplicates,
        agent_calls=len(calls),
        attempts=sum(t.attempts for t in tasks.values()),
        **kinds,
    )


def record(scenario, books, *, seconds, **extra):
    """Keep the scenario's numbers for the summary at the end of the run (and docs/reliability.md)."""
    measurements.append({"scenario": scenario, **asdict(books), "seconds": round(seconds, 1), **extra})
