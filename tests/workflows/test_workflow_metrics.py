"""Workflow metrics in /metrics: runs started and ended by workflow name, step latency by kind, and the
active runs gauge, from what the engine commits. Approval steps need no agent, so each run here moves
exactly when the test decides it."""

import threading

import pytest

from monitoring import recorder
from orchestrator_project import live
from tests.monitoring.test_metrics import _metrics_access  # noqa: F401  (an autouse fixture)
from tests.monitoring.test_metrics import scrape as scrape_now
from workflows.models import StepRun

from .helpers import RUNS, start, step_settles

pytestmark = pytest.mark.django_db

GATE = [{"id": "gate", "type": "approval", "timeout_seconds": 600}]


def scrape(client):
    # The counts are added up on the live publisher's thread: send what is waiting, then read.
    live.flush()
    return scrape_now(client)


def runs_total(samples, status, workflow="gated"):
    return samples.get(("orchestrator_workflow_runs_total", (("status", status), ("workflow", workflow))), 0)


def test_runs_and_step_latency_are_counted_and_active_runs_gauged(
    client, operator_client, define, django_capture_on_commit_callbacks
):
    define("gated", GATE)
    with django_capture_on_commit_callbacks(execute=True):
        approved, rejected, cancelled = (start(operator_client, "gated") for _ in range(3))
    for run_id in (approved, rejected, cancelled):
        step_settles(run_id, "gate", "awaiting_approval")
    samples = scrape(client)
    assert runs_total(samples, "started") == 3
    assert samples[("orchestrator_workflow_runs_active", (("workflow", "gated"),))] == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert (
            operator_client.post(f"{RUNS}/{approved}/steps/gate/approve", {}, format="json").status_code
            == 200
        )
        assert (
            operator_client.post(f"{RUNS}/{rejected}/steps/gate/reject", {}, format="json").status_code == 200
        )
        assert operator_client.post(f"{RUNS}/{cancelled}/cancel").status_code == 200
    samples = scrape(client)
    assert runs_total(samples, "started") == 3
    assert runs_total(samples, "completed") == 1
    assert runs_total(samples, "failed") == 1
    assert runs_total(samples, "cancelled") == 1
    assert ("orchestrator_workflow_runs_active", (("workflow", "gated"),)) not in samples
    # The approved and the rejected gate ran (started, then ended); the cancelled one is not timed.
    assert samples[("orchestrator_workflow_step_seconds_count", (("kind", "approval"),))] == 2
    waited = [
        (s.finished_at - s.started_at).total_seconds()
        for s in StepRun.objects.filter(run_id__in=[approved, rejected], step_id="gate")
    ]
    assert samples[("orchestrator_workflow_step_seconds_sum", (("kind", "approval"),))] == pytest.approx(
        sum(waited)
    )
    assert samples[("orchestrator_workflow_step_seconds_bucket", (("kind", "approval"), ("le", "+Inf")))] == 2


def test_a_resumed_run_is_not_counted_as_started_again(
    client, operator_client, define, django_capture_on_commit_callbacks
):
    define("gated", GATE)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(operator_client, "gated")
        operator_client.post(f"{RUNS}/{run_id}/pause")
        operator_client.post(f"{RUNS}/{run_id}/resume")
    # Resuming makes the run `running` again: that is not a start.
    assert runs_total(scrape(client), "started") == 1


def test_a_run_retried_from_a_step_is_counted_as_retried_so_its_second_end_balances(
    client, operator_client, define, django_capture_on_commit_callbacks
):
    define("gated", GATE)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(operator_client, "gated")
    step_settles(run_id, "gate", "awaiting_approval")
    with django_capture_on_commit_callbacks(execute=True):
        for verb in ("reject", "retry"):
            response = operator_client.post(f"{RUNS}/{run_id}/steps/gate/{verb}", {}, format="json")
            assert response.status_code == 200
    step_settles(run_id, "gate", "awaiting_approval")
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            operator_client.post(f"{RUNS}/{run_id}/steps/gate/approve", {}, format="json").status_code == 200
        )
    samples = scrape(client)
    # One run, ended twice: once failed, once (after the retry) completed.
    assert runs_total(samples, "started") == 1
    assert runs_total(samples, "retried") == 1
    assert runs_total(samples, "failed") == 1
    assert runs_total(samples, "completed") == 1


def test_a_commit_waits_for_no_redis_round_trip_to_count_its_changes(
    client, operator_client, define, django_capture_on_commit_callbacks, monkeypatch
):
    # The committing thread (a request here; the outcome writer in a worker) hands the changes to the
    # live publisher's thread, which counts them in Redis.
    define("gated", GATE)
    callers = []
    real_client = recorder.client

    def client_seen():
        callers.append(threading.get_ident())
        return real_client()

    monkeypatch.setattr(recorder, "client", client_seen)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            start(operator_client, "gated")
    assert threading.get_ident() not in callers
    assert runs_total(scrape(client), "started") == 3  # counted all the same
