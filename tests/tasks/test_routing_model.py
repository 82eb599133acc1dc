"""What the adaptive strategy learns of an agent (agents/routing.py): the maths, and the database doing the
same maths in the statement that gives the call's slot back."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import AgentRoute
from agents.routing import RouteState, Sample, estimate, expected_cost, fold, route_key
from tasks.engine.outcome import Outcome, OutcomeKind
from tasks.engine.outcomes import apply_outcomes
from tasks.models import Task

from .conftest import make_agent

T0 = timezone.now()


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def run(samples, start=None):
    """Fold (seconds, latency, ok) samples in order."""
    state = start
    for seconds, latency, ok in samples:
        state = fold(state, Sample("a", "k", latency, ok), at(seconds))
    return state


def test_a_slow_call_is_believed_at_once_and_fast_ones_bring_it_down_gradually(settings):
    settings.ROUTING_LATENCY_ALPHA = 0.2
    settings.ROUTING_DECAY_SECONDS = 10
    state = run([(0, 50, True), (0.1, 500, True)])
    assert state.latency_ms == 500  # the peak: no averaging of a slow call
    after = run([(0.2, 50, True)], state)
    # 0.1 s later exp(-0.01) is above 1 - alpha, so the sample weighs alpha: 500 * 0.8 + 50 * 0.2.
    assert after.latency_ms == pytest.approx(410)


def test_the_average_forgets_with_time(settings):
    settings.ROUTING_LATENCY_ALPHA = 0.2
    settings.ROUTING_DECAY_SECONDS = 10
    slow = run([(0, 500, True)])
    # A sample after 10 s (one tau) weighs 1 - exp(-1), far more than alpha.
    later = run([(10, 50, True)], slow)
    assert later.latency_ms == pytest.approx(500 * 0.36787944 + 50 * (1 - 0.36787944))
    assert later.samples == 2 and later.updated_at == at(10)


def test_failures_are_slow_outcomes_so_a_fast_failer_never_looks_fast(settings):
    settings.ROUTING_FAILURE_PENALTY_MS = 1000
    # Half of its answers are 503s after 2 ms, the rest successes after 5 ms.
    fast_failer = run([(i * 0.05, 2 if i % 2 else 5, i % 2 == 0) for i in range(60)])
    healthy_slow = run([(i * 0.05, 400, True) for i in range(60)])
    assert fast_failer.latency_ms > 300  # a 2 ms failure counted as 1,002 ms
    assert fast_failer.success_rate < 0.7
    assert expected_cost(fast_failer.latency_ms, fast_failer.success_rate, 0, 10) > expected_cost(
        healthy_slow.latency_ms, healthy_slow.success_rate, 0, 10
    )


def test_the_success_rate_decays_towards_recent_outcomes(settings):
    settings.ROUTING_SUCCESS_ALPHA = 0.05
    state = run([(0, 100, True)])
    assert state.success_rate == 1
    failed = run([(0.01, 100, False)], state)
    assert failed.success_rate == pytest.approx(0.95)
    # A failure of a never-seen agent starts it from a prior of full success, folded once.
    assert run([(0, None, False)]).success_rate == pytest.approx(0.95)


def test_an_idle_agent_drifts_back_to_the_median(settings):
    settings.ROUTING_DECAY_SECONDS = 10
    state = RouteState(latency_ms=1000, success_rate=0.5, samples=50, updated_at=T0)
    assert estimate(state, median_latency=100, median_success=1.0, now=T0) == (1000, 0.5)
    latency, success = estimate(state, median_latency=100, median_success=1.0, now=at(10))
    assert latency == pytest.approx(100 + 900 * 0.36787944) and success == pytest.approx(1 - 0.5 * 0.36787944)
    # Never seen: the capability's median.
    assert estimate(None, median_latency=100, median_success=0.9, now=T0) == (100, 0.9)


def test_expected_cost_is_time_to_a_success_stretched_by_load():
    assert expected_cost(100, 1.0, 0, 10) == 100
    assert expected_cost(100, 0.5, 0, 10) == 200
    assert expected_cost(100, 1.0, 5, 10) == 150


def test_the_routing_key_is_the_sorted_capability_set():
    assert route_key(["b", "a", "a"]) == "a,b"
    assert route_key([]) == "*"


# --- The database's side ------------------------------------------------------------------------------


@pytest.fixture
def agent(db):
    return make_agent("a", ("summarize",), current_load=10, max_concurrency=10)


def in_flight(agent, count):
    tasks = [
        Task(
            type="t", required_capabilities=["summarize"], status="running", attempts=1, assigned_agent=agent
        )
        for _ in range(count)
    ]
    Task.objects.bulk_create(tasks)
    return tasks


def completed(task, agent, latency):
    return Outcome(task.pk, 1, agent.pk, OutcomeKind.COMPLETED, result={}, latency_ms=latency)


def failed(task, agent, latency, status_code=503):
    return Outcome(
        task.pk, 1, agent.pk, OutcomeKind.RETRY, reason="x", status_code=status_code, latency_ms=latency
    )


def test_the_database_learns_exactly_what_the_model_says(agent, settings):
    settings.TASK_MAX_RETRIES = 0  # the failures end the tasks; only the learning matters here
    tasks = in_flight(agent, 6)
    # A batch of three successes, a 503 1.5 s later, a timeout-like failure, then a slow success.
    apply_outcomes(
        [completed(t, agent, latency) for t, latency in zip(tasks[:3], (40, 60, 80), strict=True)], now=at(0)
    )
    apply_outcomes([failed(tasks[3], agent, 3)], now=at(1.5))
    apply_outcomes([failed(tasks[4], agent, 2000, status_code=None)], now=at(4))
    apply_outcomes([completed(tasks[5], agent, 700)], now=at(4.2))
    # The batch: three samples of their mean, folded at once.
    expected = fold(None, Sample(agent.pk, "summarize", 60, True, count=3), at(0))
    expected = fold(expected, Sample(agent.pk, "summarize", 3, False), at(1.5))
    expected = fold(expected, Sample(agent.pk, "summarize", 2000, False), at(4))
    expected = fold(expected, Sample(agent.pk, "summarize", 700, True), at(4.2))
    row = AgentRoute.objects.get(agent=agent, capability="summarize")
    assert row.latency_ms == pytest.approx(expected.latency_ms)
    assert row.success_rate == pytest.approx(expected.success_rate)
    assert row.samples == 6 and row.updated_at == at(4.2)
    agent.refresh_from_db()
    assert agent.current_load == 4


def test_a_task_refused_for_its_own_sake_teaches_nothing(agent):
    [task] = in_flight(agent, 1)
    rejected = Outcome(
        task.pk, 1, agent.pk, OutcomeKind.FAIL, reason="bad input", status_code=400, counts_for_circuit=False
    )
    apply_outcomes([rejected], now=at(0))
    assert not AgentRoute.objects.exists()


def test_a_429_is_learned_as_a_slow_outcome(agent):
    [task] = in_flight(agent, 1)
    shed = Outcome(
        task.pk, 1, agent.pk, OutcomeKind.RETRY, reason="busy", status_code=429, counts_for_circuit=False
    )
    apply_outcomes([shed], now=at(0))
    row = AgentRoute.objects.get(agent=agent)
    assert row.latency_ms == 1000 and row.success_rate == pytest.approx(0.95)


def test_learning_rides_on_the_statement_that_frees_the_slot(agent):
    tasks = in_flight(agent, 2)
    with CaptureQueriesContext(connection) as successes:
        apply_outcomes([completed(t, agent, 10) for t in tasks], now=at(0))
    [release] = [q["sql"] for q in successes if "agents_agentroute" in q["sql"]]
    assert "UPDATE agents_agent" in release and "current_load" in release
    # And it goes with the transaction: undone together with the slot release.
    more = in_flight(agent, 1)
    with pytest.raises(RuntimeError), transaction.atomic():
        apply_outcomes([failed(more[0], agent, 5)], now=at(1))
        raise RuntimeError("roll back")
    row = AgentRoute.objects.get(agent=agent)
    agent.refresh_from_db()
    assert row.samples == 2 and row.success_rate == 1 and agent.current_load == 8


def test_an_agent_removed_meanwhile_teaches_nothing_and_breaks_nothing(agent):
    [task] = in_flight(agent, 1)
    outcome = completed(task, agent, 10)
    outcome.agent_id = uuid.uuid4()  # no such agent
    apply_outcomes([outcome], now=at(0))
    assert not AgentRoute.objects.exists()
