"""The relay against a real Kafka-protocol broker (Tansu): every change arrives, once, with its
CloudEvents headers and its entity's id as key, in each entity's order; one relay publishes at a time."""

import contextlib
import json
import threading
from collections import Counter, defaultdict

from django.db import connection, connections, transaction

from agents import capacity
from agents import services as agent_services
from agents.capacity import Verdict
from orchestrator_project.errors import Conflict
from orchestrator_project.outbox import stats
from orchestrator_project.outbox.models import OutboxEvent
from orchestrator_project.outbox.sinks.kafka import KafkaSink
from tasks import services
from tasks.models import Task
from tests.kafka_broker import Tansu, consume_until, consumer
from tests.outbox.test_outbox_writes import valid
from tests.tasks.conftest import wait_until
from workflows import definitions, runs


def headers_of(message):
    return {name: value.decode() for name, value in message.headers()}


def receive_all(kafka_broker, topics):
    """Every message on the test's topics, until as many as the outbox holds have arrived."""
    expected = OutboxEvent.objects.count()
    client = consumer(kafka_broker, topics.values())
    try:
        return consume_until(client, lambda messages: len(messages) >= expected)
    finally:
        client.close()


def test_every_change_type_arrives_once_with_its_headers_and_key(kafka_broker, topics, start_relay, settings):
    settings.CIRCUIT_BREAKER_FAILURE_THRESHOLD = 1
    task, _ = services.create_task(data=valid())
    services.cancel_task(task_id=task.task_id)
    services.retry_task(task_id=task.task_id)
    agent, _, _ = agent_services.register_agent(
        endpoint="http://127.0.0.1:9/ada", type="llm", name="ada", capabilities=["summarise"]
    )
    agent_services.drain(agent_id=agent.agent_id)
    agent_services.resume(agent_id=agent.agent_id)
    with transaction.atomic():
        capacity.release(agent.agent_id, verdict=Verdict.FAILURE, now=task.created_at)
    agent_services.reset_circuit(agent_ids=[agent.agent_id])
    agent_services.unregister_agent(agent_id=agent.agent_id)
    definitions.create_definition(name="brief", spec={"steps": [{"id": "plan", "task_type": "plan"}]})
    run, _ = runs.start_run(workflow="brief")
    runs.pause_run(run_id=run.run_id)

    start_relay(KafkaSink(kafka_broker.bootstrap))
    messages = receive_all(kafka_broker, topics)

    rows = {str(row.event_id): row for row in OutboxEvent.objects.all()}
    assert Counter(headers_of(m)["ce_id"] for m in messages) == Counter(rows.keys())  # each exactly once
    for message in messages:
        headers = headers_of(message)
        row = rows[headers["ce_id"]]
        assert message.topic() == topics[row.aggregatetype]
        assert message.key().decode() == str(row.aggregateid)
        assert headers == {
            "ce_specversion": "1.0",
            "ce_id": str(row.event_id),
            "ce_source": "/agent-orchestrator",
            "ce_type": row.type,
            "ce_subject": f"{row.aggregatetype}/{row.aggregateid}",
            "ce_time": row.created_at.isoformat(),
            "ce_sequence": str(row.sequence),
            "content-type": "application/json",
        }
        assert json.loads(message.value()) == row.payload
    kinds = {(headers_of(m)["ce_type"], json.loads(m.value()).get("transition")) for m in messages}
    assert kinds == {
        ("io.orchestrator.task.created.v1", None),
        ("io.orchestrator.task.status_changed.v1", "cancelled"),
        ("io.orchestrator.task.status_changed.v1", "requeued"),
        ("io.orchestrator.agent.registered.v1", None),
        ("io.orchestrator.agent.status_changed.v1", None),
        ("io.orchestrator.agent.circuit_changed.v1", None),
        ("io.orchestrator.agent.unregistered.v1", None),
        ("io.orchestrator.workflow_run.status_changed.v1", None),
        ("io.orchestrator.workflow_run.step_status_changed.v1", None),
    }
    assert {m.topic() for m in messages} == set(topics.values())
    run_statuses = [
        json.loads(m.value())["status"]
        for m in messages
        if headers_of(m)["ce_type"] == "io.orchestrator.workflow_run.status_changed.v1"
    ]
    assert run_statuses == ["running", "paused"]  # in the run's own order
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def _in_thread(target):
    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_each_entity_arrives_in_its_own_order_under_concurrent_writers(kafka_broker, topics, start_relay):
    start_relay(KafkaSink(kafka_broker.bootstrap), batch=7)  # small batches: entities span several
    tasks = services.create_tasks_bulk(items=[valid()] * 8)

    def flip(task_id):
        try:
            services.cancel_task(task_id=task_id)
        except Conflict:
            services.retry_task(task_id=task_id)

    def churn(offset):
        # Cancel and requeue the same tasks as the other writers; who wins each race does not matter.
        for round_ in range(12):
            with contextlib.suppress(Conflict):  # another writer flipped it in between
                flip(tasks[(offset + round_) % len(tasks)].task_id)

    writers = [_in_thread(lambda offset=offset: churn(offset)) for offset in range(6)]

    # And the case that defeats ordering by transaction id: `early` takes its xid first, then waits for
    # the task `late` holds; `late` commits first, so its event comes first although its xid is higher.
    contested = tasks[0]
    early_has_xid, late_holds_task = threading.Event(), threading.Event()

    def early():
        with transaction.atomic():
            services.create_task(data=valid())  # takes the xid
            early_has_xid.set()
            late_holds_task.wait(10)
            Task.objects.select_for_update().get(task_id=contested.task_id)  # waits for `late`
            flip(contested.task_id)

    def late():
        early_has_xid.wait(10)
        with transaction.atomic():
            Task.objects.select_for_update().get(task_id=contested.task_id)
            late_holds_task.set()
            flip(contested.task_id)

    writers += [_in_thread(early), _in_thread(late)]
    for writer in writers:
        writer.join(60)
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM outbox_event a JOIN outbox_event b USING (aggregateid)
               WHERE a.sequence < b.sequence AND a.txid::text::bigint > b.txid::text::bigint"""
        )
        assert cursor.fetchone()[0] > 0, "no later event had the older transaction id"

    messages = receive_all(kafka_broker, topics)
    sequences = defaultdict(list)
    for message in messages:
        sequences[message.key().decode()].append(int(headers_of(message)["ce_sequence"]))
    for task in Task.objects.all():
        assert sequences[str(task.task_id)] == list(range(1, task.event_sequence + 1)), task.task_id


def test_of_two_relays_one_publishes_and_the_other_takes_over(kafka_broker, topics, start_relay):
    first = start_relay(KafkaSink(kafka_broker.bootstrap))
    second = start_relay(KafkaSink(kafka_broker.bootstrap), wait_to_lead=False)
    services.create_tasks_bulk(items=[valid()] * 20)
    messages = receive_all(kafka_broker, topics)
    assert len(messages) == 20 and len({headers_of(m)["ce_id"] for m in messages}) == 20
    assert not second.leading.is_set()

    first.stop.set()
    assert second.leading.wait(15)
    services.create_tasks_bulk(items=[valid()] * 5)
    messages = receive_all(kafka_broker, topics)
    assert len(messages) == 25 and len({headers_of(m)["ce_id"] for m in messages}) == 25
    for conn in connections.all():
        conn.close()


def test_while_the_broker_is_away_the_relay_retries_and_then_delivers_everything(
    tmp_path, topics, start_relay, settings
):
    settings.KAFKA_DELIVERY_TIMEOUT_MS = 1000
    away = Tansu(tmp_path)  # its port is free: nothing answers there yet
    services.create_tasks_bulk(items=[valid()] * 10)
    start_relay(KafkaSink(away.bootstrap))
    wait_until(lambda: stats.read()["failures"] >= 2, message="the relay to fail and retry")
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 10

    away.start()
    try:
        messages = receive_all(away, topics)
    finally:
        away.stop()
    assert sorted(int(headers_of(m)["ce_sequence"]) for m in messages) == [1] * 10
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
