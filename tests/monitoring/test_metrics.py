"""/metrics: protected, and its numbers agree with the database and with what every process published."""

import ipaddress
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import AgentStatus, CircuitState
from orchestrator_project.live import publish_task_transitions
from orchestrator_project.live import publisher as events
from tasks.models import Task, TaskStatus

from .conftest import free_port, make_agent, transition

TOKEN = "metrics-token-for-tests-0123456789"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _metrics_access(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []


def scrape(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_it_refuses_scrapers_without_token_or_allowed_address(client):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def test_it_admits_the_token_or_an_allowed_network(client, settings):
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.1.0.0/16")]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403


def test_gauges_agree_with_the_database(client):
    now = timezone.now()
    for status, count in ((TaskStatus.PENDING, 3), (TaskStatus.RUNNING, 2), (TaskStatus.COMPLETED, 4)):
        for _ in range(count):
            Task.objects.create(type="t", status=status, required_capabilities=["summarize"])
    Task.objects.create(type="t", required_capabilities=[])
    Task.objects.filter(status=TaskStatus.PENDING, required_capabilities=["summarize"]).update(
        created_at=now - timedelta(minutes=5)
    )
    make_agent("a")
    make_agent("b", status=AgentStatus.OFFLINE)
    make_agent("c", circuit_state=CircuitState.OPEN)

    samples = scrape(client)
    for status in TaskStatus.values:
        assert (
            samples[("orchestrator_tasks", (("status", status),))]
            == Task.objects.filter(status=status).count()
        )
    assert samples[("orchestrator_agents", (("status", "online"),))] == 2
    assert samples[("orchestrator_agents", (("status", "offline"),))] == 1
    assert samples[("orchestrator_agent_circuit_open", ())] == 1
    assert samples[("orchestrator_queue_depth", (("capability", "summarize"),))] == 3
    assert samples[("orchestrator_queue_depth", (("capability", "*"),))] == 1
    assert samples[("orchestrator_queue_oldest_age_seconds", (("capability", "summarize"),))] >= 300


def test_counters_and_histograms_sum_what_was_published(client):
    task_ids = [uuid.uuid4() for _ in range(3)]
    publish_task_transitions(
        [transition(task_id, "pending", kind="created", attempt=0) for task_id in task_ids]
    )
    publish_task_transitions(
        [
            transition(task_ids[0], "running", kind="sent", dispatch_latency_seconds=0.02),
            transition(task_ids[0], "completed", duration_seconds=0.7, agent_call_outcome="success"),
            transition(task_ids[1], "failed", duration_seconds=42.0, agent_call_outcome="rejected"),
            transition(task_ids[2], "pending", kind="retrying", agent_call_outcome="timeout"),
            transition(
                task_ids[1],
                "pending",
                kind="retrying",
                agent_call_outcome="error",
                retry_in_seconds=0.0,
                failover_seconds=0.8,
            ),
        ]
    )
    events.flush()
    samples = scrape(client)
    assert samples[("orchestrator_tasks_total", (("status", "pending"),))] == 5
    assert samples[("orchestrator_tasks_total", (("status", "completed"),))] == 1
    assert samples[("orchestrator_tasks_total", (("status", "failed"),))] == 1
    assert samples[("orchestrator_task_events_total", (("kind", "retrying"),))] == 2
    for outcome in ("success", "rejected", "timeout", "error"):
        assert samples[("orchestrator_agent_calls_total", (("outcome", outcome),))] == 1
    # Only the retry that failed over counts as a failover.
    assert samples[("orchestrator_task_failovers_total", (("outcome", "error"),))] == 1
    assert ("orchestrator_task_failovers_total", (("outcome", "timeout"),)) not in samples
    assert samples[("orchestrator_task_duration_seconds_count", ())] == 2
    assert samples[("orchestrator_task_duration_seconds_sum", ())] == pytest.approx(42.7)
    assert samples[("orchestrator_task_duration_seconds_bucket", (("le", "0.5"),))] == 0
    assert samples[("orchestrator_task_duration_seconds_bucket", (("le", "1.0"),))] == 1
    assert samples[("orchestrator_task_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("orchestrator_dispatch_latency_seconds_count", ())] == 1
    assert samples[("orchestrator_dispatch_latency_seconds_bucket", (("le", "0.025"),))] == 1
    assert samples[("orchestrator_metrics_store_up", ())] == 1


def test_without_redis_gauges_remain_and_the_store_is_reported_down(client):
    Task.objects.create(type="t")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(REDIS_URL=dead):
        publish_task_transitions([transition(uuid.uuid4(), "completed")])  # must not raise
        events.flush()  # nor may sending it
        samples = scrape(client)
    assert samples[("orchestrator_metrics_store_up", ())] == 0
    assert samples[("orchestrator_tasks", (("status", "pending"),))] == 1
    assert not any(name == "orchestrator_tasks_total" for name, _ in samples)


def test_django_prometheus_series_are_included(client):
    client.get("/health")
    assert any(name.startswith("django_http_requests") for name, _ in scrape(client))


def _db_executions(samples):
    return samples.get(("django_db_execute_total", (("alias", "default"), ("vendor", "postgresql"))), 0)


def test_database_queries_are_counted(client):
    before = _db_executions(scrape(client))
    Task.objects.count()
    assert _db_executions(scrape(client)) > before
    assert any(name == "django_db_query_duration_seconds_count" for name, _ in scrape(client))


def test_the_prepared_hot_statements_are_counted_too(db, settings):
    """orchestrator_project/prepared.py makes its own cursors: they are counted like Django's."""
    from django.db import connection
    from prometheus_client import REGISTRY

    from orchestrator_project.prepared import prepared_cursor

    labels = {"alias": "default", "vendor": "postgresql"}
    settings.DB_PREPARED_STATEMENTS = True
    before = REGISTRY.get_sample_value("django_db_execute_total", labels) or 0
    with prepared_cursor() as cursor:
        for _ in range(3):
            cursor.execute("SELECT %s::int AS counted_and_prepared", [1])
    assert REGISTRY.get_sample_value("django_db_execute_total", labels) == before + 3
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%counted_and_prepared%%'"
        )
        assert cursor.fetchone()[0] == 1


def test_a_failing_statement_is_counted_as_an_error_of_its_type(db):
    from django.db import DatabaseError, connection, transaction
    from prometheus_client import REGISTRY

    labels = {"alias": "default", "vendor": "postgresql", "type": "UndefinedTable"}
    before = REGISTRY.get_sample_value("django_db_errors_total", labels) or 0
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert REGISTRY.get_sample_value("django_db_errors_total", labels) == before + 1
