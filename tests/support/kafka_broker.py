"""The real Kafka broker of `make kafka-up` (.ci/kafka/kafka.sh), for the Kafka tests: where it listens,
a fresh topic per test, and a producer writing records the way a log shipper does.

Locally the tests skip with the reason when no broker is running; under CI (CI=true) they fail, because
CI starts it (like the Elasticsearch tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.paths import REPO

BOOTSTRAP = os.environ.get("KUBESIGMA_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
TLS_BOOTSTRAP = os.environ.get("KUBESIGMA_KAFKA_TLS_BOOTSTRAP", "127.0.0.1:9093")
HOME = Path(os.environ.get("KUBESIGMA_KAFKA_HOME", REPO / ".kafka"))


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    tls_bootstrap: str
    ca_file: Path  # the CA of the SASL_SSL listener's certificate
    password_file: Path  # the SASL (PLAIN) password of user `kubesigma`

    def create_topic(self, partitions: int = 2, prefix: str = "kst") -> str:
        from confluent_kafka.admin import AdminClient, NewTopic

        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
        return name

    def produce(
        self,
        topic: str,
        values: Iterable[bytes],
        *,
        key: bytes | None = None,
        partition: int | None = None,
        at: float | None = None,
    ) -> int:
        """Writes the values in order (to one partition when given, else by key), stamped `at` (seconds
        since the epoch; else when sent, as shippers do); returns how many."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        n = 0
        kwargs: dict = {"partition": partition} if partition is not None else {}
        if at is not None:
            kwargs["timestamp"] = int(at * 1000)
        for value in values:
            producer.produce(topic, value, key=key, **kwargs)
            n += 1
        if producer.flush(30):
            raise AssertionError("Kafka did not take every record within 30 s")
        return n

    def committed(self, topic: str, group: str) -> dict[int, int]:
        """The group's committed offset per partition (-1001 when none)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            parts = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
            return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        finally:
            consumer.close()

    def end_offsets(self, topic: str) -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "kst-offsets"})
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in metadata.topics[topic].partitions
            }
        finally:
            consumer.close()


def _problem() -> str | None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP, "log_level": 0})
    try:
        admin.list_topics(timeout=5)
    except KafkaException as err:
        return str(err)
    if not (HOME / "tls" / "ca.pem").is_file() or not (HOME / "sasl" / "password").is_file():
        return f"no TLS CA or SASL password under {HOME} (start the broker with `make kafka-up`)"
    return None


def broker() -> Broker:
    """The running broker, or a skip (a failure under CI) saying how to start it."""
    problem = _problem()
    if problem:
        message = f"Kafka not reachable at {BOOTSTRAP} ({problem}); start it with `make kafka-up`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Broker(BOOTSTRAP, TLS_BOOTSTRAP, HOME / "tls" / "ca.pem", HOME / "sasl" / "password")
