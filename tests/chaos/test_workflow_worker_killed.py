"""Scenario 11: workers are SIGKILLed while workflow runs are in their map steps.

A run advances in the transaction of its step's task move, so a worker killed mid-move loses the move and
the advance together; the lease sweep then hands the stranded task out again. Checked beyond the books:
every run completes, no step (or map item) completes twice or gets a second task, every agent call for a
step carries that step's one idempotency key (run:step:index:1), and the outputs are whole and in order.
"""

import threading
from collections import Counter, defaultdict

import pytest

from tasks.models import Task, TaskEvent
from workflows import definitions, runs
from workflows.models import StepKind, StepRun, WorkflowEvent, WorkflowRun

from .agents import answers_after, register
from .books import check_books, record, wait_for
from .harness import Stopwatch

pytestmark = pytest.mark.slow

RUNS = 12
ITEMS = 25
KILLS = 2
CAPABILITIES = ("plan", "research", "summarize")
SPEC = {
    # 5 s like every chaos task: a stranded call's lease expires 7 s after its claim. Retries are for
    # the kills (a task can be stranded by each of them).
    "defaults": {"timeout_seconds": 5, "max_retries": 6},
    "steps": [
        {"id": "plan", "task_type": "plan", "input": {"count": {"$path": "$.input.count"}}},
        {
            "id": "research",
            "type": "map",
            "depends_on": ["plan"],
            "task_type": "research",
            "over": {"$path": "$.steps.plan.output.items"},
            "max_concurrency": 4,
            "input": {"n": {"$path": "$.item"}},
        },
        {
            "id": "summarize",
            "depends_on": ["research"],
            "task_type": "summarize",
            "input": {"found": {"$path": "$.steps.research.output"}},
        },
    ],
    "output": {"total": {"$path": "$.steps.summarize.output.total"}},
}


def work(call):
    """Deterministic answers (so the outputs can be checked) that also say which attempt they served
    (so the books can check a completed task kept its last attempt's answer)."""
    data, served = call.body["input_data"], {"attempt": call.body["attempt"]}
    if call.body["type"] == "plan":
        return 200, {"result": {"items": list(range(data["count"])), **served}}
    if call.body["type"] == "research":
        return 200, {"result": {"square": data["n"] ** 2, **served}}
    return 200, {"result": {"total": sum(found["square"] for found in data["found"]), **served}}


def items_completed():
    return StepRun.objects.filter(map_index__gte=0, status="completed").count()


def test_killed_workers_lose_no_run_and_complete_no_step_twice(stack, chaos_agents):
    agents = [chaos_agents(answers_after(0.2, 0.5, answer=work)) for _ in range(4)]
    for agent in agents:
        register(agent, capabilities=CAPABILITIES, max_concurrency=20)
    definition, _, _ = definitions.create_definition(name="chaos-research", spec=SPEC)
    stack.beat()
    workers = [stack.worker("worker-1"), stack.worker("worker-2")]
    clock = Stopwatch()
    run_ids = [
        runs.start_run(workflow=definition.name, input={"count": ITEMS})[0].run_id for _ in range(RUNS)
    ]

    replacements = []
    for kill in range(1, KILLS + 1):
        wait_for(
            lambda kill=kill: items_completed() >= kill * RUNS * ITEMS // (KILLS + 2),
            timeout=60,
            message=f"{kill}/{KILLS + 2} of the map items to complete",
        )
        wait_for(lambda: sum(a.in_flight for a in agents) >= 10, timeout=30, message="agent calls in flight")
        workers.pop(0).kill()
        start = threading.Thread(target=lambda kill=kill: workers.append(stack.worker(f"worker-{kill + 2}")))
        start.start()
        replacements.append(start)
    for start in replacements:
        start.join(60)

    wait_for(
        lambda: WorkflowRun.objects.filter(status__in=["completed", "failed", "cancelled"]).count() == RUNS,
        timeout=90,
        message=f"all {RUNS} runs to end",
    )
    seconds = clock.seconds
    books = check_books(agents)  # every task once terminal, no result accepted twice, no attempt sent twice

    # No run lost: every run that was started completed, with the whole, ordered output.
    assert sorted(WorkflowRun.objects.values_list("run_id", "status")) == sorted(
        (run_id, "completed") for run_id in run_ids
    )
    squares = [n * n for n in range(ITEMS)]
    outputs = list(WorkflowRun.objects.values_list("output", flat=True))
    assert outputs == [{"total": sum(squares)}] * RUNS
    for research in StepRun.objects.filter(step_id="research", map_index=-1):
        assert [found["square"] for found in research.output] == squares

    # No step completed twice: each step (and map item) of each run has one row, one attempt, one task,
    # and exactly one `running` and one `completed` event.
    task_steps = StepRun.objects.filter(kind=StepKind.TASK)
    expected_steps = RUNS * (2 + ITEMS)
    assert task_steps.count() == expected_steps
    assert set(StepRun.objects.values_list("status", "attempt")) == {("completed", 1)}
    tasks_per_step = Counter(Task.objects.values_list("workflow_step_id", flat=True))
    assert set(task_steps.values_list("pk", flat=True)) == set(tasks_per_step)
    assert set(tasks_per_step.values()) == {1}
    history = defaultdict(list)
    for run_id, step_id, index, status in WorkflowEvent.objects.exclude(step_id="").values_list(
        "run_id", "step_id", "map_index", "status"
    ):
        history[(run_id, step_id, index)].append(status)
    assert len(history) == expected_steps + RUNS  # the task steps and items, and each map step itself
    assert {key: h for key, h in history.items() if h != ["running", "completed"]} == {}

    # What the agents saw: every call for a step carries that step's one key, and each key belongs to
    # one task (a retried call is the same task's next attempt, never a second task for the step).
    step_of_task = {
        str(task_id): f"{run_id}:{step_id}:{max(index, 0)}:1"
        for task_id, run_id, step_id, index in StepRun.objects.filter(kind=StepKind.TASK).values_list(
            "task_id", "run_id", "step_id", "map_index"
        )
    }
    calls = [c for a in agents for c in a.calls if c.path.endswith("/execute") and c.signature_valid]
    assert {c.headers["idempotency-key"] for c in calls} == set(step_of_task.values())
    assert [c for c in calls if c.headers["idempotency-key"] != step_of_task[c.body["task_id"]]] == []

    # The kills did strand calls: their leases expired and the sweep handed the tasks out again.
    stranded = TaskEvent.objects.filter(kind="retrying", reason__startswith="lease expired").count()
    assert stranded >= 1
    record(
        "11. workers SIGKILLed mid-map (workflows)",
        books,
        seconds=seconds,
        kills=KILLS,
        runs=RUNS,
        steps=expected_steps,
        calls_repeated=len(calls) - len({c.headers["idempotency-key"] for c in calls}),
    )
