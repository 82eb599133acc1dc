"""The Kafka sink: confluent-kafka's idempotent producer, CloudEvents 1.0 in binary mode.

Idempotence with acks=all: the broker keeps each partition's messages in the order produced and drops
the producer's own retries, so ordering per key (one partition per entity) survives a broker failover.
Each message carries the CloudEvents attributes as `ce_*` headers and the payload as its value; its key
is the entity's id. Topics are not created here: production clusters usually forbid auto-creation
(docs/events.md says how to create them).
"""

import logging

from confluent_kafka import KafkaException, Producer
from django.conf import settings

from .base import SinkUnavailable

logger = logging.getLogger("orchestrator_project.outbox.kafka")

# Optional settings passed through to librdkafka when set (SASL and TLS).
_PASSED_THROUGH = {
    "sasl.username": "KAFKA_SASL_USERNAME",
    "sasl.password": "KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "KAFKA_SSL_KEY_LOCATION",
    "ssl.key.password": "KAFKA_SSL_KEY_PASSWORD",
}


def producer_config(bootstrap_servers=None):
    config = {
        "bootstrap.servers": bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS,
        "client.id": "orchestrator-relay",
        "enable.idempotence": True,
        "acks": "all",
        # Batches of the relay arrive at once: a few milliseconds let them share requests.
        "linger.ms": 5,
        "message.timeout.ms": settings.KAFKA_DELIVERY_TIMEOUT_MS,
        "security.protocol": settings.KAFKA_SECURITY_PROTOCOL,
        # librdkafka's own lines go to our logging (structured, levelled), not straight to stderr.
        "logger": logger,
    }
    if settings.KAFKA_SECURITY_PROTOCOL.startswith("sasl"):
        config["sasl.mechanism"] = settings.KAFKA_SASL_MECHANISM
    for option, setting in _PASSED_THROUGH.items():
        if getattr(settings, setting):
            config[option] = getattr(settings, setting)
    return config


class KafkaSink:
    def __init__(self, bootstrap_servers=None):
        self._config = producer_config(bootstrap_servers)
        self.producer = Producer(self._config)

    def publish(self, events):
        outcome = {}
        try:
            for event in events:
                self._produce(event, outcome)
            # Waits for every delivery report: each message ends delivered or failed within
            # message.timeout.ms, so this returns by then. A fatal error raises here too.
            self.producer.flush(settings.KAFKA_DELIVERY_TIMEOUT_MS / 1000 + 5)
        except KafkaException as exc:
            # Found by the chaos scenario: a broker that comes back without its state makes the
            # idempotent producer fail fatally (UNKNOWN_PRODUCER_ID) from flush().
            self._renew_if_fatal(exc.args[0])
            raise SinkUnavailable(f"kafka: {exc}") from exc
        acknowledged, failed_keys = set(), set()
        for event in events:
            error = outcome.get(event.position, "no delivery report")
            if error is None and event.key not in failed_keys:
                acknowledged.add(event.position)
            else:
                # An entity's later events go again with the failed one, in order, even if they got in.
                failed_keys.add(event.key)
                self._renew_if_fatal(error)
        if not acknowledged:
            first = next(iter(outcome.values()), "no delivery report")
            raise SinkUnavailable(f"kafka: {first}")
        return acknowledged

    def _renew_if_fatal(self, error):
        # An idempotent producer that hit a fatal error (a broker that lost its state, say) refuses
        # everything afterwards: start a new one, with a new producer id.
        if getattr(error, "fatal", lambda: False)():
            logger.warning("kafka producer failed fatally (%s); starting a new one", error)
            self.producer = Producer(self._config)

    def _produce(self, event, outcome):
        def report(error, _message, position=event.position):
            outcome[position] = error

        headers = [(name, value.encode()) for name, value in event.attributes().items()]
        while True:
            try:
                self.producer.produce(
                    event.topic, value=event.data(), key=event.key, headers=headers, on_delivery=report
                )
                return
            except BufferError:
                # The local queue is full (the broker is slow or away): serve delivery reports, retry.
                self.producer.poll(0.1)

    def close(self):
        self.producer.flush(5)
