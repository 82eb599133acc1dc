"""The writer's own dispatch round (dispatcher.RoundAfterOutcomes): it claims inside the transaction
that applied a batch of outcomes, hands its calls over only once that commits, and leaves the rest to
the dispatcher's thread."""

import pytest
from django.db import transaction
from django.test import override_settings

from tasks.engine.dispatcher import Dispatcher, RoundAfterOutcomes
from tasks.models import Task, TaskStatus

from .conftest import make_agent, queue_tasks


class _RecordingRunner:
    """What a dispatcher needs of its runner: whether it takes work, and where calls go."""

    def __init__(self, accepting=True):
        self.accepting = accepting
        self.submitted = []

    def submit(self, specs):
        self.submitted.extend(specs)
        return len(specs)


def _round(accepting=True):
    runner = _RecordingRunner(accepting)
    dispatcher = Dispatcher(runner)  # never started: only its kicks are looked at
    return runner, dispatcher, RoundAfterOutcomes(dispatcher)


def test_its_calls_start_when_the_transaction_commits_and_nothing_else_needs_a_round(transactional_db):
    make_agent("a", max_concurrency=5)
    queued = queue_tasks(3)
    runner, dispatcher, round_after = _round()
    with transaction.atomic():
        round_after(None)
        assert runner.submitted == []  # not before the commit
        assert Task.objects.filter(status=TaskStatus.ASSIGNED).count() == 3
    assert sorted(str(spec.task_id) for spec in runner.submitted) == sorted(str(t.task_id) for t in queued)
    round_after.finish()
    assert not dispatcher._kicked  # a short round took all it could: no second round for nothing


def test_a_rolled_back_round_starts_no_call_and_leaves_the_work_to_the_dispatcher(transactional_db):
    make_agent("a", max_concurrency=5)
    queue_tasks(2)
    runner, dispatcher, round_after = _round()
    with pytest.raises(RuntimeError), transaction.atomic():
        round_after(None)
        raise RuntimeError("the batch's transaction fails after the round")
    assert runner.submitted == []
    assert Task.objects.filter(status=TaskStatus.PENDING).count() == 2
    round_after.finish()
    assert dispatcher._kicked


@override_settings(DISPATCH_BATCH_SIZE=2)
def test_a_full_round_kicks_the_dispatcher_for_what_it_may_have_left(transactional_db):
    make_agent("a", max_concurrency=5)
    queue_tasks(3)
    runner, dispatcher, round_after = _round()
    with transaction.atomic():
        round_after(None)
    assert len(runner.submitted) == 2
    round_after.finish()
    assert dispatcher._kicked


def test_a_runner_that_stopped_taking_work_claims_nothing_and_tells_the_others(dispatch_rings):
    make_agent("a", max_concurrency=5)
    queue_tasks(1)
    runner, dispatcher, round_after = _round(accepting=False)
    with transaction.atomic():
        round_after(None)
        assert dispatch_rings.heard() == []  # on commit, as every ring
    assert runner.submitted == []
    assert Task.objects.get().status == TaskStatus.PENDING
    # The slots its outcomes freed are for the other workers' dispatchers, which may have found the
    # fleet full and skip creations' rings until capacity rings.
    assert dispatch_rings.heard() == [""]
