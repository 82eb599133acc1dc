"""The default sink: with no Kafka, the relay fills a Redis Stream per entity type, and consumer groups
read it like any stream."""

import json

import redis
from django.conf import settings

from agents import services as agent_services
from orchestrator_project.outbox import stats
from orchestrator_project.outbox.models import OutboxEvent
from orchestrator_project.outbox.sinks.redis_streams import RedisStreamSink
from tasks import services
from tests.outbox.test_outbox_writes import valid
from tests.tasks.conftest import wait_until

GROUP = "analytics"


def test_a_consumer_group_reads_every_event_from_the_streams_and_acknowledges_them(topics, start_relay):
    client = redis.Redis.from_url(settings.REDIS_URL)
    streams = [topics["task"], topics["agent"]]
    for stream in streams:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    task, _ = services.create_task(data=valid())
    services.cancel_task(task_id=task.task_id)
    agent_services.register_agent(
        endpoint="http://127.0.0.1:9/ada", type="llm", name="ada", capabilities=["summarise"]
    )
    rows = {str(row.event_id): row for row in OutboxEvent.objects.all()}

    start_relay(RedisStreamSink())
    received = {}
    while len(received) < len(rows):
        # Blocks until entries arrive (or a second passes): the relay's XADDs wake it.
        for stream, entries in client.xreadgroup(GROUP, "worker-1", {s: ">" for s in streams}, block=1000):
            for entry_id, fields in entries:
                fields = {key.decode(): value.decode() for key, value in fields.items()}
                assert fields["ce_id"] not in received
                received[fields["ce_id"]] = (stream.decode(), fields)
                client.xack(stream, GROUP, entry_id)

    assert received.keys() == rows.keys()
    for event_id, (stream, fields) in received.items():
        row = rows[event_id]
        assert stream == topics[row.aggregatetype]
        assert fields["key"] == str(row.aggregateid)
        assert (fields["ce_type"], fields["ce_sequence"]) == (row.type, str(row.sequence))
        assert fields["ce_subject"] == f"{row.aggregatetype}/{row.aggregateid}"
        assert json.loads(fields["data"]) == row.payload
    for stream in streams:
        assert client.xpending(stream, GROUP)["pending"] == 0
    # Counted after the relay marked them, which may be just after the consumer had them.
    wait_until(lambda: stats.read()["published"] == len(rows), message="the relay to count what it published")
