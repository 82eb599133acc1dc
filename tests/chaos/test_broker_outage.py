"""Scenario 10: the Kafka broker goes away for 30 s while 1,000 tasks run, and comes back empty.

Tasks go on meanwhile (nothing on their path waits for the broker); the relay retries with backoff and,
once the broker is back, publishes everything it had not, in each entity's order. Tansu keeps its data
in memory, so the broker that comes back has lost what it held (its topics are declared again, as a
cluster would have kept them): the consumer is let read everything the relay had delivered before the
broker is stopped (the relay is frozen for that moment), so that what is checked is the relay's promise,
not the broker's storage.
"""

import signal
import threading
import time
import uuid
from collections import defaultdict

import pytest
from django.conf import settings

from orchestrator_project.outbox.models import OutboxEvent
from tasks import services
from tests.kafka_broker import Tansu, consumer, create_topics, wait_for_assignment

from .agents import CAPABILITY, answers_after, register
from .books import check_books, record, terminal_count, wait_for, wait_until_all_terminal
from .harness import Stopwatch

pytestmark = pytest.mark.slow

TASKS = 1000
OUTAGE_SECONDS = 30


class Reader(threading.Thread):
    """Reads the topics for as long as the scenario runs, through the outage and the broker's restart."""

    def __init__(self, broker, topics):
        super().__init__(daemon=True)
        self.client = consumer(broker, topics)
        wait_for_assignment(self.client)
        self.ids = []  # (ce_id, key, sequence) in arrival order
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            message = self.client.poll(0.2)
            if message is None or message.error():
                continue  # transport errors while the broker is away
            headers = {name: value.decode() for name, value in message.headers()}
            self.ids.append((headers["ce_id"], message.key().decode(), int(headers["ce_sequence"])))
        self.client.close()

    def seen(self):
        return {event_id for event_id, _, _ in list(self.ids)}


def published_ids():
    return {
        str(i)
        for i in OutboxEvent.objects.filter(published_at__isnull=False).values_list("event_id", flat=True)
    }


def test_a_broker_away_for_30_s_loses_no_event_and_keeps_each_entitys_order(stack, chaos_agents, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    topics = {kind: f"{name}.{suffix}" for kind, name in settings.EVENT_TOPICS.items()}
    broker = Tansu(tmp_path).start()
    create_topics(broker, topics.values())
    # Slow enough (about 25 tasks/s) that the tasks run on through the outage.
    agents = [chaos_agents(answers_after(0.2, 0.4)) for _ in range(2)]
    for agent in agents:
        register(agent, max_concurrency=8)
    stack.beat()
    stack.worker("worker-1")
    relay = stack.relay(
        EVENT_SINK="kafka",
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        KAFKA_DELIVERY_TIMEOUT_MS=5000,
        EVENT_RELAY_BACKOFF_MAX=2,
        **{f"EVENT_TOPIC_{kind.upper()}": topic for kind, topic in topics.items()},
    )
    reader = Reader(broker, topics.values())
    reader.start()
    clock = Stopwatch()
    services.create_tasks_bulk(
        items=[{"type": CAPABILITY, "required_capabilities": [CAPABILITY], "timeout_seconds": 5}] * TASKS
    )

    try:
        wait_for(
            lambda: terminal_count() >= TASKS // 4, timeout=120, message="a quarter of the tasks to finish"
        )
        relay.signal(signal.SIGSTOP)
        delivered = published_ids()
        wait_for(
            lambda: reader.seen() >= delivered, timeout=60, message="the consumer to read what was delivered"
        )
        broker.stop()
        relay.signal(signal.SIGCONT)
        finished_before = terminal_count()
        time.sleep(OUTAGE_SECONDS)  # the outage itself: the scenario's fault lasts this long
        finished_during = terminal_count() - finished_before
        # Tansu comes back with no topics at all, where a Kafka cluster keeps its topics through an
        # outage. The relay is held while they are declared again as they were: otherwise its first
        # publish auto-created one with another partition count, the others vanished from the consumer's
        # metadata (3 -> 0 partitions), and whether it ever read everything was down to timing.
        relay.signal(signal.SIGSTOP)
        broker.start()
        create_topics(broker, topics.values())
        relay.signal(signal.SIGCONT)

        wait_until_all_terminal(TASKS, timeout=180)
        everything = {str(i) for i in OutboxEvent.objects.values_list("event_id", flat=True)}
        wait_for(lambda: reader.seen() >= everything, timeout=180, message="every event to arrive")
    finally:
        reader.stopped.set()
        reader.join(10)
        broker.stop()

    first_arrivals, order = set(), defaultdict(list)
    for event_id, key, sequence in reader.ids:
        if event_id not in first_arrivals:
            first_arrivals.add(event_id)
            order[key].append(sequence)
    for key, sequences in order.items():
        assert sequences == list(range(1, len(sequences) + 1)), key
    assert finished_during > 0  # tasks did not wait for the broker
    books = check_books(agents)
    assert books.completed == TASKS
    record(
        "10. Kafka broker away for 30 s",
        books,
        seconds=clock.seconds,
        events=len(everything),
        duplicates=len(reader.ids) - len(first_arrivals),
        finished_during_outage=finished_during,
    )
