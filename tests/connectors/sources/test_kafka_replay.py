"""Where a Kafka job without runner state re-reads a partition from (`replay_start`), against the real
broker of `make kafka-up`: records one minute apart by their Kafka timestamps, a committed offset, and
the horizon in seconds before the last record processed."""

from __future__ import annotations

import time

import pytest

from kubesigma.connectors.sources.kafka import _consumer, replay_start
from kubesigma.connectors.sources.kafka_config import KafkaConfig
from support.kafka_broker import Broker

MINUTE = 60.0
RECORDS = 20


@pytest.fixture(scope="module")
def minutes(kafka: Broker) -> str:
    """A one-partition topic: record i stamped i minutes after the first (offsets 0..19)."""
    topic = kafka.create_topic(partitions=1, prefix="kst-replay")
    first = time.time() - 2 * 3600
    for i in range(RECORDS):
        kafka.produce(topic, [b'{"n": %d}' % i], partition=0, at=first + i * MINUTE)
    return topic


def start(kafka: Broker, topic: str, committed: int, horizon: float, low: int = 0) -> int:
    consumer = _consumer(KafkaConfig(kafka.bootstrap, topic, group="kst-replay"))
    try:
        return replay_start(consumer, topic, 0, committed, low, horizon)
    finally:
        consumer.close()


def test_the_replay_starts_a_horizon_before_the_last_record_processed(kafka: Broker, minutes: str) -> None:
    # Committed 15: the last record processed is offset 14 (minute 14); five minutes before it is minute 9.
    assert start(kafka, minutes, committed=15, horizon=5 * MINUTE) == 9
    assert start(kafka, minutes, committed=15, horizon=5 * MINUTE + 30) == 9
    assert start(kafka, minutes, committed=15, horizon=5 * MINUTE - 30) == 10
    assert start(kafka, minutes, committed=RECORDS, horizon=3 * MINUTE) == RECORDS - 4


def test_no_horizon_resumes_at_the_committed_offset(kafka: Broker, minutes: str) -> None:
    assert start(kafka, minutes, committed=15, horizon=0) == 15


def test_the_replay_stops_at_the_oldest_record_kept(kafka: Broker, minutes: str) -> None:
    assert start(kafka, minutes, committed=15, horizon=24 * 3600) == 0
    # Records before `low` are gone (retention): the replay starts at the oldest one the broker holds.
    assert start(kafka, minutes, committed=15, horizon=24 * 3600, low=4) == 4
    assert start(kafka, minutes, committed=0, horizon=24 * 3600) == 0
