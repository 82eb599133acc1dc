"""The writer holds a batch of "sent" marks briefly for an outcome (tasks/engine/writer.py): a call that is
answered at once has its mark and its outcome written in one transaction, and a task's started_at is when
its request went out, not when the mark was written."""

import pytest
from django.db import connection

from tasks.engine import claim
from tasks.engine import writer as writer_module
from tasks.engine.outcome import Outcome, OutcomeKind
from tasks.engine.writer import SentMark, Writer
from tasks.models import Task

from .conftest import make_agent, queue_tasks, wait_until


@pytest.fixture
def writer(transactional_db):
    writer = Writer(on_capacity_freed=lambda: None)
    writer.start()
    yield writer
    writer.stop()
    writer.join(timeout=10)


def assigned_task():
    agent = make_agent("a", max_concurrency=4)
    queue_tasks(1)
    [assignment] = claim.claim()
    return assignment, agent


def transactions_of_events(task_id):
    """{event kind: the id of the transaction that wrote it} (xmin: rows of one transaction share it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, xmin::text FROM tasks_taskevent"
            " WHERE task_id = %s AND kind IN ('sent', 'completed')",
            [str(task_id)],
        )
        return dict(cursor.fetchall())


def test_an_answer_that_comes_while_its_mark_is_held_is_written_with_it(writer, monkeypatch):
    # Long enough that the test's own pace cannot decide it; the product holds 20 ms.
    monkeypatch.setattr(writer_module, "SENT_HOLD_SECONDS", 5.0)
    assignment, agent = assigned_task()
    mark = SentMark(assignment.task_id, assignment.attempt, agent.agent_id)
    writer.put(mark)
    # The writer has taken the mark and is holding it: the answer comes now.
    wait_until(writer.queue.empty, interval=0.001, message="the writer to take the mark")
    writer.put(
        Outcome(
            assignment.task_id, assignment.attempt, agent.agent_id, OutcomeKind.COMPLETED, result={"ok": 1}
        )
    )
    wait_until(
        lambda: Task.objects.filter(task_id=assignment.task_id, status="completed").exists(),
        message="the task to complete",
    )
    transactions = transactions_of_events(assignment.task_id)
    assert set(transactions) == {"sent", "completed"}
    assert transactions["sent"] == transactions["completed"]
    assert Task.objects.get(task_id=assignment.task_id).started_at == mark.at


def test_a_mark_with_no_answer_is_still_written_and_dated_when_it_was_sent(writer):
    assignment, agent = assigned_task()
    mark = SentMark(assignment.task_id, assignment.attempt, agent.agent_id)
    writer.put(mark)
    wait_until(
        lambda: Task.objects.filter(task_id=assignment.task_id, status="running").exists(),
        message="the task to be running",
    )
    assert Task.objects.get(task_id=assignment.task_id).started_at == mark.at
    assert set(transactions_of_events(assignment.task_id)) == {"sent"}
