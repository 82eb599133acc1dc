"""Cancelling a task an agent holds tells the agent: `POST {endpoint}/cancel`, signed, once, from the
worker's loop (tasks/engine/cancel_notice.py). Best effort: the task is cancelled whatever it answers."""

import logging
import threading

from tasks import jobs
from tasks.models import Task

from .conftest import wait_until
from .test_dispatch_rules import settled, submit

TASKS = "/api/v1/tasks"
NOTICES = "tasks.engine.cancel_notice"


def held_until(release):
    return lambda call: lambda: (release.wait(20), (200, {"result": "too late"}))[1]


def test_an_agent_mid_call_is_told_and_its_late_answer_changes_nothing(
    worker, operator_client, fake_agents, register
):
    release = threading.Event()
    fake = fake_agents(held_until(release))
    register(fake)
    task_id = submit(operator_client)
    fake.wait_for_calls(1)
    try:
        assert operator_client.delete(f"{TASKS}/{task_id}").status_code == 200
        [notice] = fake.wait_for_cancels(1)
    finally:
        release.set()
    assert notice.signature_valid
    assert notice.body == {"task_id": task_id, "attempt": 1, "reason": "cancelled by an operator"}
    wait_until(lambda: worker_idle(), message="the late answer to be applied")
    task = Task.objects.get(task_id=task_id)
    assert task.status == "cancelled" and task.result is None


def test_an_agent_that_accepted_the_task_is_told(worker, operator_client, fake_agents, register):
    fake = fake_agents(lambda call: (202, {}))
    register(fake)
    task_id = submit(operator_client)
    settled(task_id, "running")
    assert operator_client.delete(f"{TASKS}/{task_id}").status_code == 200
    [notice] = fake.wait_for_cancels(1)
    assert notice.body["task_id"] == task_id and notice.signature_valid


def test_no_notice_for_a_task_no_agent_holds_nor_when_notices_are_off(
    worker, operator_client, fake_agents, register, settings, monkeypatch
):
    sent = []
    monkeypatch.setattr(jobs.tell_agent_cancelled, "delay", lambda *args: sent.append(args))
    pending = submit(operator_client)  # no agent yet
    assert operator_client.delete(f"{TASKS}/{pending}").status_code == 200
    assert sent == []

    settings.AGENT_CANCEL_NOTICES = False
    register(fake_agents(lambda call: (202, {})))
    running = submit(operator_client)
    settled(running, "running")
    assert operator_client.delete(f"{TASKS}/{running}").status_code == 200
    assert sent == []

    settings.AGENT_CANCEL_NOTICES = True
    again = submit(operator_client)
    settled(again, "running")
    assert operator_client.delete(f"{TASKS}/{again}").status_code == 200
    assert [args[0] for args in sent] == [again]


def test_an_agent_without_the_endpoint_is_not_a_warning_and_a_failing_one_is(
    worker, operator_client, fake_agents, register, caplog
):
    caplog.set_level(logging.INFO, logger=NOTICES)
    fake = fake_agents(lambda call: (202, {}))
    register(fake)

    fake.cancel_status = 404  # an agent that never implemented it
    first = submit(operator_client)
    settled(first, "running")
    assert operator_client.delete(f"{TASKS}/{first}").status_code == 200
    fake.wait_for_cancels(1)

    fake.cancel_status = 500
    second = submit(operator_client)
    settled(second, "running")
    assert operator_client.delete(f"{TASKS}/{second}").status_code == 200
    fake.wait_for_cancels(2)
    warnings = wait_until(lambda: [r for r in caplog.records if r.name == NOTICES], message="a warning")
    # Only the 500: the log line comes after the answer, so the 404's would be there by now.
    assert [r.getMessage() for r in warnings] == ["the agent answered HTTP 500 to the cancel notice"]


def worker_idle():
    from tasks.engine.runner import current_runner

    runner = current_runner()
    return runner.in_flight == 0 and runner.writer.wait_idle(0.1)
