"""Audit records from a Kafka topic: each record's value is one JSON audit record of any format the registry
knows (an Event, an EventList, a GKE LogEntry, a CloudWatch subscription envelope...), keyed or not.

A splittable DoFn per partition, on confluent-kafka (librdkafka): each call reads what the partition has
past the restriction's offset, claims it, stamps batches with their records' event time, moves the
partition's watermark, and checkpoints the next offset (the runner keeps it: a Flink checkpoint or savepoint
resumes there). Offsets are committed to the consumer group only when the runner finalizes the bundle that
read them, that is once their records are processed (at least once; alert ids are deterministic, so the
Elasticsearch sink stays free of duplicates). A new job without runner state starts at the group's
committed offsets, or at `start` (earliest by default) when the group has none; with a replay horizon it
starts earlier, at the first record at most that much older than the last one processed, so the
correlation and suppression state the runner lost is rebuilt from the records (`replay_start`). The
group's offsets never go back below where they were: a replay re-reads, it does not un-commit.

docs/deploy.md says why this source and not Beam's cross-language KafkaIO.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp

from kubesigma.connectors.model import DeadLetter, RawRecord, Source
from kubesigma.connectors.sources import RECORD_BATCH, RecordBatch, record_time
from kubesigma.connectors.sources.files import ReadLimits
from kubesigma.connectors.sources.kafka_config import KafkaConfig, KafkaConfigError
from kubesigma.connectors.sources.polling import PollTracker, advance_watermark

log = logging.getLogger("kubesigma")

MAX_RECORDS_PER_POLL = 10 * RECORD_BATCH  # a backlog is caught up over several calls, each checkpointed
POLL_TIMEOUT = 0.2  # seconds the first fetch of a call waits for records
IDLE_INTERVAL = 0.5  # seconds between calls once the partition is caught up
METADATA_TIMEOUT = 30.0


@dataclass(frozen=True)
class PartitionPosition:
    """The checkpoint of one partition: the next offset to read (None: not resolved yet, the group's
    committed offset or `start` decides), since when nothing new came (wall clock, for `max_idle`), and
    whether this part of the work is finished."""

    next_offset: int | None = None
    idle_since: float | None = None
    done: bool = False
    resumed_at: int = -1  # the group's committed offset when this job started: commits stay at or past it


class _PartitionTracker(PollTracker[PartitionPosition]):
    """Each call claims the offset it read up to; a checkpoint hands it to the next call. A partition is
    one ordered stream: it is never split, only checkpointed."""

    def completed(self, restriction: PartitionPosition) -> float:
        return float(restriction.next_offset or 0)


class _PartitionRestrictions(RestrictionProvider):
    def initial_restriction(self, element: tuple[str, int]) -> PartitionPosition:
        return PartitionPosition()

    def create_tracker(self, restriction: PartitionPosition) -> _PartitionTracker:
        return _PartitionTracker(restriction)

    def restriction_size(self, element: tuple[str, int], restriction: PartitionPosition) -> float:
        return 1.0

    def truncate(self, element: tuple[str, int], restriction: PartitionPosition) -> None:
        return None  # on drain, stop reading: what was read is processed, the rest stays in Kafka


class _HeldUntilRead(WatermarkEstimatorProvider):
    """Each partition's watermark starts at the beginning of time, not unset: an unset one holds nothing
    back, so a partition whose first read came back empty let the others (caught up, on the wall clock)
    carry the watermark past its backlog, making every record of it late."""

    def initial_estimator_state(self, element: tuple[str, int], restriction: PartitionPosition) -> Timestamp:
        return MIN_TIMESTAMP

    def create_watermark_estimator(self, estimator_state: Timestamp | None) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(estimator_state)


RESTRICTIONS = _PartitionRestrictions()
WATERMARKS = _HeldUntilRead()


def _consumer(config: KafkaConfig) -> Any:
    from confluent_kafka import Consumer

    return Consumer(config.client_config())


def partitions(config: KafkaConfig, timeout: float = METADATA_TIMEOUT) -> list[int]:
    """The topic's partitions; a topic that does not exist (or that we may not describe) is an error."""
    consumer = _consumer(config)
    try:
        metadata = consumer.list_topics(config.topic, timeout=timeout)
    except Exception as err:
        raise KafkaConfigError(
            f"cannot read the metadata of {config.target} from {config.bootstrap}: {err}"
        ) from err
    finally:
        consumer.close()
    topic = metadata.topics.get(config.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        reason = topic.error if topic is not None and topic.error is not None else "no partitions"
        raise KafkaConfigError(f"Kafka topic {config.topic!r} at {config.bootstrap}: {reason}")
    return sorted(topic.partitions)


def replay_start(consumer: Any, topic: str, partition: int, committed: int, low: int, horizon: float) -> int:
    """Where a job without runner state re-reads a partition whose group committed `committed`: the first
    offset whose record's Kafka timestamp is at most `horizon` seconds before the last record processed
    (the one before `committed`), never before `low` (the oldest record kept) nor after `committed`.
    Shippers stamp records when they send them (CreateTime), shortly after the event, so the Kafka
    timestamps index the partition by time (`offsets_for_times`) without reading it."""
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, TopicPartition

    if horizon <= 0 or committed <= low:
        return max(committed, low)
    consumer.assign([TopicPartition(topic, partition, committed - 1)])
    last = next((m for m in consumer.consume(1, timeout=METADATA_TIMEOUT) if m.error() is None), None)
    if last is None:
        log.warning(
            "kafka: %s/%d: cannot read the record before offset %d: no replay", topic, partition, committed
        )
        return committed
    kind, millis = last.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or millis < 0:
        log.warning("kafka: %s/%d: records carry no timestamp: no replay", topic, partition)
        return committed
    since = TopicPartition(topic, partition, max(0, millis - int(horizon * 1000)))
    found = consumer.offsets_for_times([since], timeout=METADATA_TIMEOUT)[0].offset
    # -1: no record that recent (timestamps out of order): nothing to replay.
    return min(committed, max(low, found)) if found >= 0 else committed


def record_of(message: Any, limits: ReadLimits) -> RawRecord | DeadLetter:
    """One Kafka record as a RawRecord sourced by topic, partition and offset (the decoder parses its JSON
    later, so a bad value dead-letters with that source); an empty or oversized value dead-letters here."""
    source = Source(f"kafka://{message.topic()}/{message.partition()}", offset=message.offset())
    value = message.value()
    if not value:
        return DeadLetter("read", "Kafka record without a value (a tombstone?)", source, b"")
    if len(value) > limits.hard:
        return DeadLetter(
            "read",
            f"record of {len(value)} bytes is over the hard limit of {limits.hard} bytes",
            source,
            value[:4096],
        )
    return RawRecord(value, source)


def event_time(message: Any, record: RawRecord | DeadLetter) -> float:
    """The record's own event time when it names one, else the time Kafka gives the record (CreateTime)."""
    found = record_time(record.data) if isinstance(record, RawRecord) else None
    if found is not None:
        return found
    kind, millis = message.timestamp()
    return millis / 1000 if kind and millis >= 0 else time.time()


class _ListPartitions(beam.DoFn):
    """The topic → one element per partition (found where the job runs, so the launcher needs no access)."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config

    def process(self, topic: str) -> Iterator[tuple[str, int]]:
        found = partitions(self.config)
        log.info("kafka: reading %s, partitions %s, group %s", self.config.target, found, self.config.group)
        for partition in found:
            yield topic, partition


class _ReadPartition(beam.DoFn):
    """A splittable DoFn: each call reads one partition from its restriction's offset, emits batches
    stamped with their event time, moves the watermark, checkpoints the next offset, and commits it to the
    group when the runner finalizes the bundle.

    Watermark: the newest event time read minus `max_delay` (audit records are written when requests
    complete, and shippers batch, so event times arrive somewhat out of order); while the partition has
    nothing new it follows the wall clock minus `max_delay`, so windows close and timers fire on a quiet
    cluster. It never goes back.
    """

    def __init__(
        self,
        config: KafkaConfig,
        limits: ReadLimits,
        max_delay: float,
        max_idle: float | None,
        replay: float = 0.0,
    ) -> None:
        self.config = config
        self.limits = limits
        self.max_delay = max_delay
        self.max_idle = max_idle
        self.replay = replay

    def setup(self) -> None:
        self.consumers: dict[tuple[str, int], Any] = {}
        self.expected: dict[tuple[str, int], int] = {}  # the offset each consumer will deliver next
        self.records = Metrics.counter("kubesigma", "kafka_records")
        self.committed = Metrics.counter("kubesigma", "kafka_offsets_committed")
        self.watermark_ms = Metrics.gauge("kubesigma", "source_watermark_ms")
        self.backlog = Metrics.gauge("kubesigma", "kafka_backlog_records")

    def teardown(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()
        self.consumers.clear()

    def _at(self, topic: str, partition: int, position: PartitionPosition) -> tuple[Any, int, int]:
        """The partition's consumer, positioned at the restriction's next offset (resolved from the
        group's committed offset, or `start`, the first time), and the offset commits stay at or past."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        key = (topic, partition)
        consumer = self.consumers.get(key)
        if consumer is None:
            consumer = self.consumers[key] = _consumer(self.config)
        offset, resumed_at = position.next_offset, position.resumed_at
        if offset is None:
            committed = consumer.committed([TopicPartition(topic, partition)], timeout=METADATA_TIMEOUT)[
                0
            ].offset
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=METADATA_TIMEOUT
            )
            if committed >= 0:
                # A committed offset the broker no longer holds (retention) starts at the oldest record kept.
                resumed_at = max(committed, low)
                offset = replay_start(consumer, topic, partition, resumed_at, low, self.replay)
                self.expected.pop(key, None)  # replay_start moved the consumer
            else:
                offset = max(low if self.config.start == "earliest" else high, low)
            log.info(
                "kafka: %s/%d starts at offset %d (group committed %d, replay horizon %gs)",
                topic,
                partition,
                offset,
                committed,
                self.replay,
            )
        if self.expected.get(key) != offset:
            start = TopicPartition(topic, partition, offset if offset >= 0 else OFFSET_BEGINNING)
            if key in self.expected:
                consumer.seek(start)
            else:
                consumer.assign([start])
            self.expected[key] = offset
        return consumer, offset, resumed_at

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        element: tuple[str, int],
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(RESTRICTIONS),
        watermark=beam.DoFn.WatermarkEstimatorParam(WATERMARKS),
    ) -> Iterator[Any]:
        topic, partition = element
        current: PartitionPosition = tracker.current_restriction()
        consumer, offset, resumed_at = self._at(topic, partition, current)
        messages = self._fetch(consumer)
        records: list[tuple[Any, RawRecord | DeadLetter]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == -191:  # _PARTITION_EOF: informational
                    continue
                raise RuntimeError(f"kafka {topic}/{partition}: {error}")
            records.append((message, record_of(message, self.limits)))
        now = time.time()
        if records:
            offset = records[-1][0].offset() + 1
        behind = self._backlog(consumer, topic, partition, offset)
        # Idle only once caught up: a first fetch may come back empty while the partition has a backlog.
        idle_since = None if records or behind else (current.idle_since or now)
        stop = self.max_idle is not None and idle_since is not None and now - idle_since >= self.max_idle
        if not tracker.try_claim(PartitionPosition(offset, idle_since, stop, resumed_at)):
            return
        self.expected[(topic, partition)] = offset
        newest = None
        for start in range(0, len(records), RECORD_BATCH):
            part = records[start : start + RECORD_BATCH]
            times = [event_time(message, record) for message, record in part]
            newest = max(times) if newest is None else max(newest, *times)
            yield TimestampedValue(RecordBatch(record for _, record in part), min(times))
        if records:
            self.records.inc(len(records))
            # Replayed records were processed before: the group's offset stays where it was.
            finalizer.register(_Commit(consumer, topic, partition, max(offset, resumed_at), self.committed))
        else:
            # Runners ask every bundle of a DoFn that finalizes to finalize (Prism logs one that has no callback).
            finalizer.register(_nothing_to_commit)
        if newest is not None or not behind:
            # Only a caught-up partition follows the wall clock: records still to read (a backlog, a
            # replay) would otherwise all be late for the correlation and suppression stages.
            self._advance(watermark, (newest if newest is not None else now) - self.max_delay)
        if stop:
            return  # finished (max_idle): the watermark goes to the end of time and every window closes
        # Behind: come back at once; caught up: wait a little.
        tracker.defer_remainder(Duration(seconds=0 if behind else IDLE_INTERVAL))

    def _fetch(self, consumer: Any) -> list[Any]:
        messages = consumer.consume(RECORD_BATCH, timeout=POLL_TIMEOUT)
        while messages and len(messages) < MAX_RECORDS_PER_POLL:
            more = consumer.consume(RECORD_BATCH, timeout=0)
            if not more:
                break
            messages.extend(more)
        return messages

    def _backlog(self, consumer: Any, topic: str, partition: int, offset: int) -> int:
        from confluent_kafka import TopicPartition

        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        if high < 0:  # nothing fetched yet: ask the broker
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=METADATA_TIMEOUT
            )
        behind = max(0, high - offset) if high >= 0 else 0
        self.backlog.set(behind)
        return behind

    def _advance(self, watermark: Any, seconds: float) -> None:
        if advance_watermark(watermark, seconds):
            self.watermark_ms.set(int(seconds * 1000))


def _nothing_to_commit() -> None:
    return None


class _Commit:
    """Commits a partition's offset to the consumer group once the runner has finalized the bundle that
    read up to it (its records processed and their results durable)."""

    def __init__(self, consumer: Any, topic: str, partition: int, offset: int, counter: Any) -> None:
        self.consumer, self.topic, self.partition, self.offset, self.counter = (
            consumer,
            topic,
            partition,
            offset,
            counter,
        )

    def __call__(self) -> None:
        from confluent_kafka import TopicPartition

        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, self.partition, self.offset)], asynchronous=False
            )
            self.counter.inc()
        except Exception as err:  # a later bundle commits a later offset; a restart re-reads (at least once)
            log.warning("kafka: committing %s/%d@%d failed: %s", self.topic, self.partition, self.offset, err)


class ReadKafkaRecords(beam.PTransform):
    """An unbounded source of batches of RawRecords from every partition of a Kafka topic; with `max_idle`,
    it finishes once no partition had anything new for that long (replays, tests), which closes every
    window and ends the job. A partition with a committed group offset is re-read from `replay` seconds
    (Kafka timestamps) before it: the stateful stages' windows, rebuilt by a job without runner state."""

    def __init__(
        self,
        config: KafkaConfig,
        limits: ReadLimits,
        max_delay: float = 5.0,
        max_idle: float | None = None,
        replay: float = 0.0,
    ) -> None:
        super().__init__()
        self.config = config.validate()
        self.limits = limits
        self.max_delay = max_delay
        self.max_idle = max_idle
        self.replay = replay

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        return (
            pbegin
            | "Topic" >> beam.Create([self.config.topic])
            | "Partitions" >> beam.ParDo(_ListPartitions(self.config))
            | "Spread" >> beam.Reshuffle()
            | "Read"
            >> beam.ParDo(
                _ReadPartition(self.config, self.limits, self.max_delay, self.max_idle, self.replay)
            ).with_output_types(RecordBatch)
        )
