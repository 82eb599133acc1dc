import threading
import uuid

import pytest
from django.db import connections

from orchestrator_project.outbox.relay import Relay
from tests.kafka_broker import Tansu


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    broker = Tansu(tmp_path_factory.mktemp("kafka")).start()
    yield broker
    broker.stop()


@pytest.fixture
def topics(settings):
    """Topics (and streams) of this test's own: the broker lives for the whole session."""
    suffix = uuid.uuid4().hex[:8]
    settings.EVENT_TOPICS = {kind: f"{name}.{suffix}" for kind, name in settings.EVENT_TOPICS.items()}
    return settings.EVENT_TOPICS


@pytest.fixture
def start_relay(transactional_db):
    """Relays in threads of the test process, on their own connections; stopped at the end."""
    running = []

    def start(sink, *, wait_to_lead=True, **options):
        relay = Relay(sink, **options)
        thread = threading.Thread(target=relay.run, name="relay", daemon=True)
        thread.start()
        running.append((relay, thread))
        if wait_to_lead:
            assert relay.leading.wait(15), "the relay never started publishing"
        return relay

    yield start
    for relay, _ in running:
        relay.stop.set()
    for _, thread in running:
        thread.join(60)
    for connection in connections.all():
        connection.close()
