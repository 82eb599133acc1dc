"""The relay as its own process (`manage.py relay_events`): SIGKILLed in the middle of its work, the next
one sends again only the batch that was not acknowledged, and nothing is lost."""

import sys
from collections import Counter

import pytest

from orchestrator_project.outbox.models import OutboxEvent
from tasks import services
from tests.kafka_broker import consume_until, consumer, create_topics, wait_for_assignment
from tests.outbox.test_outbox_writes import valid
from tests.outbox.test_relay_kafka import headers_of
from tests.processes import Child, child_env

pytestmark = pytest.mark.slow

BATCH = 10  # small: many round trips, so the kill lands while most events still wait


def relay_process(name, log_dir, broker, topics):
    env = child_env(
        EVENT_SINK="kafka",
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        EVENT_TOPIC_TASK=topics["task"],
        EVENT_TOPIC_AGENT=topics["agent"],
        EVENT_TOPIC_WORKFLOW_RUN=topics["workflow_run"],
        EVENT_RELAY_BATCH=BATCH,
    )
    child = Child(name, [sys.executable, "manage.py", "relay_events"], env, log_dir)
    child.wait_for_output("relay is publishing")
    return child


class Tally:
    """Counts every ce_id the consumer has seen, as `consume_until`'s condition."""

    def __init__(self, until):
        self.ids = Counter()
        self.until = until
        self._read = 0

    def __call__(self, messages):
        for message in messages[self._read :]:
            self.ids[headers_of(message)["ce_id"]] += 1
        self._read = len(messages)
        return self.until(self)


def test_a_relay_killed_mid_batch_sends_again_only_that_batch(
    transactional_db, kafka_broker, topics, tmp_path
):
    for _ in range(10):
        services.create_tasks_bulk(items=[valid()] * 1000)
    everything = {str(event_id) for event_id in OutboxEvent.objects.values_list("event_id", flat=True)}
    create_topics(kafka_broker, topics.values())
    client = consumer(kafka_broker, topics.values())
    wait_for_assignment(client)  # so that it reads along while the relay works, and the kill lands mid-way
    try:
        tally = Tally(until=lambda tally: len(tally.ids) >= 1000)
        relay = relay_process("relay-1", tmp_path, kafka_broker, topics)
        messages = consume_until(client, tally)
        relay.kill()
        acknowledged = {
            str(event_id)
            for event_id in OutboxEvent.objects.filter(published_at__isnull=False).values_list(
                "event_id", flat=True
            )
        }
        assert len(acknowledged) < len(everything), "the relay finished before it was killed"

        relay = relay_process("relay-2", tmp_path, kafka_broker, topics)
        tally.until = lambda tally: set(tally.ids) >= everything
        consume_until(client, tally, timeout=120, messages=messages)
    finally:
        relay.stop()
        client.close()
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    duplicates = {event_id for event_id, count in tally.ids.items() if count > 1}
    assert duplicates <= everything - acknowledged  # only what was never acknowledged went twice
    assert len(duplicates) <= BATCH  # and that is at most the batch in flight at the kill
    assert len(messages) == len(everything) + sum(tally.ids[d] - 1 for d in duplicates)
