"""Several instances on one machine cooperate: two web servers, two workers and one beat against the same
Postgres and Redis, as on Kubernetes. Tasks created through either web instance are dispatched exactly
once, a WebSocket on one instance sees the work created through the other, and stopping (or killing)
a web instance and a worker in the middle of the run loses nothing."""

import json
import signal

import httpx
import pytest

from tasks.models import Task, TaskEvent

from .conftest import CAPABILITY, EventStream, issue_token, wait_until

pytestmark = pytest.mark.slow


def create_tasks(web, token, count, **fields):
    ids = []
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {token}"}, timeout=15) as http:
        for number in range(count):
            response = http.post(
                "/api/v1/tasks",
                json={"type": CAPABILITY, "input_data": {"n": number}, "required_capabilities": [CAPABILITY]}
                | fields,
                headers={"X-Request-ID": f"{web.name}-create-{number}"},
            )
            assert response.status_code == 201, response.text
            assert response.headers["X-Request-ID"] == f"{web.name}-create-{number}"
            ids.append(response.json()["task_id"])
    return ids


def create_in_bulk(web, token, count, **fields):
    """One request for `count` tasks, so that their calls all start within moments of each other."""
    task = {"type": CAPABILITY, "required_capabilities": [CAPABILITY]} | fields
    response = httpx.post(
        f"{web.url}/api/v1/tasks/bulk",
        json={"tasks": [task | {"input_data": {"n": n}} for n in range(count)]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert response.status_code == 201, response.text
    return response.json()["task_ids"]


def start(deployment):
    web_a, web_b = deployment.web("web-a"), deployment.web("web-b")
    workers = [deployment.worker("worker-1"), deployment.worker("worker-2")]
    deployment.beat()
    deployment.wait_until_ready()
    return web_a, web_b, workers


def held_calls(agents, workers, count):
    """Wait until `count` calls are held by the agents; returns {worker: task ids it is waiting on}."""
    wait_until(lambda: len(agents.calls) >= count, timeout=30, message=f"{count} agent calls in flight")
    held = {worker: agents.held_by(worker) for worker in workers}
    assert sum(len(ids) for ids in held.values()) == count, held
    return held


def completed(ids):
    return Task.objects.filter(task_id__in=ids, status="completed").count() == len(ids)


def access_lines(child):
    """The JSON access lines a web instance wrote (one per request)."""
    lines = [json.loads(line) for line in child.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "orchestrator.access"]


def test_tasks_from_either_instance_run_once_and_a_graceful_stop_mid_run_loses_nothing(
    deployment, gated_agents
):
    agents = gated_agents(3, max_concurrency=3)  # 9 calls at a time
    operator, viewer = issue_token("olivia-operator", "operators"), issue_token("victor-viewer", "viewers")
    web_a, web_b, workers = start(deployment)
    stream = EventStream(web_a.port, viewer)
    try:
        through_b = create_tasks(web_b, operator, 12)
        through_a = create_tasks(web_a, operator, 12)
        held = held_calls(agents, workers, 9)
        # Stop the worker with the most calls in flight (and the web instance the B tasks came through)
        # while 15 tasks still wait: the worker must finish its calls, not drop or repeat them.
        leaving = max(workers, key=lambda worker: len(held[worker]))
        staying = next(worker for worker in workers if worker is not leaving)
        assert held[leaving] and Task.objects.filter(status="pending").count() == 15
        web_b.signal(signal.SIGTERM)
        leaving.signal(signal.SIGTERM)
        leaving.wait_for_output("Warm shutdown", timeout=15)
        agents.open()
        assert leaving.proc.wait(30) == 0
        assert web_b.proc.wait(30) is not None
        after_stop = create_tasks(web_a, operator, 6)

        everything = through_a + through_b + after_stop
        wait_until(lambda: completed(everything), timeout=45, message="every task to complete")
        stream.wait_for(lambda s: set(through_b) <= s.seen("completed"), 15, "B's tasks completed on A")
    finally:
        stream.close()

    # Exactly once: one agent call and one attempt per task, nothing handed back or retried.
    assert agents.calls_per_task() == {task_id: [1] for task_id in everything}
    assert set(Task.objects.filter(task_id__in=everything).values_list("attempts", flat=True)) == {1}
    assert TaskEvent.objects.filter(kind="completed").count() == len(everything)
    assert not TaskEvent.objects.filter(kind__in=["retrying", "reassigned"]).exists()
    # The instance that stayed took over: it ran everything created after the stop.
    assert staying.proc.poll() is None and len(agents.calls) == len(everything)
    # A watcher on A was told about the work created through B, from the other processes.
    seen_on_a = {event["status"] for event in stream.events if event["task_id"] in through_b}
    assert {"pending", "running", "completed"} <= seen_on_a
    # Structured logs from both instances carry the request ids the clients sent.
    for web, ids in ((web_a, through_a), (web_b, through_b)):
        logged = {line["request_id"] for line in access_lines(web) if line["path"] == "/api/v1/tasks"}
        assert {f"{web.name}-create-{number}" for number in range(len(ids))} <= logged


def test_killing_a_worker_and_a_web_instance_mid_call_loses_nothing(deployment, gated_agents):
    agents = gated_agents(3, max_concurrency=3)
    operator = issue_token("olivia-operator", "operators")
    web_a, web_b, workers = start(deployment)
    # A short timeout makes the lease (timeout + LEASE_GRACE_SECONDS) of the killed worker's calls
    # expire in seconds; beat's sweep then hands those tasks out again. The calls the survivor holds
    # must not time out before the gate opens: one request per instance starts them all at once.
    everything = create_in_bulk(web_b, operator, 6, timeout_seconds=4) + create_in_bulk(
        web_a, operator, 6, timeout_seconds=4
    )
    held = held_calls(agents, workers, 9)
    doomed = max(workers, key=lambda worker: len(held[worker]))
    orphaned = held[doomed]
    doomed.signal(signal.SIGKILL)
    web_b.signal(signal.SIGKILL)
    doomed.proc.wait(10)
    agents.open()  # the dead worker's agents answer into a closed socket

    wait_until(lambda: completed(everything), timeout=45, message="every task to complete")
    calls = agents.calls_per_task()
    tasks = {str(task.task_id): task for task in Task.objects.filter(task_id__in=everything)}
    assert orphaned
    for task_id in everything:
        task = tasks[task_id]
        if task_id in orphaned:
            # Its first call died with the worker: the lease expired and attempt 2 did the work.
            assert calls[task_id] == [1, 2] and task.attempts == 2 and task.result == {"attempt": 2}
            assert "lease expired" in TaskEvent.objects.get(task=task, kind="retrying").reason
        else:
            assert calls[task_id] == [1] and task.attempts == 1 and task.result == {"attempt": 1}
        assert TaskEvent.objects.filter(task=task, kind="completed").count() == 1
