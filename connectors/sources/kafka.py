"""Audit records from a Kafka topic: each record's value is one JSON audit record of any format the registry
knows (an Event, an EventList, a GKE LogEntry, a CloudWatch subscription envelope...), keyed or not.

A splittable DoFn over the whole topic, on confluent-kafka (librdkafka): each call reads what the partitions
have past the restriction's offsets, claims them, stamps batches with their records' event time, moves the
topic's watermark (the oldest of its partitions'), and checkpoints the next offsets (the runner keeps them: a
Flink checkpoint or savepoint resumes there). Offsets are committed to the consumer group only when the
runner finalizes the bundle that read them, that is once their records are processed (at least once; alert
ids are deterministic, so the Elasticsearch sink stays free of duplicates). A new job without runner state
starts at the group's committed offsets, or at `start` (earliest by default) when the group has none; with
a replay horizon it starts earlier, at the first record at most that much older than the last one
processed, so the correlation and suppression state the runner lost is rebuilt from the records
(`replay_start`). The group's offsets never go back below where they were: a replay re-reads, it does not
un-commit.

docs/deploy.md says why this source and not Beam's cross-language KafkaIO.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
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
    """Where one partition stands: the next offset to read (None: not resolved yet, the group's committed
    offset or `start` decides), the group's committed offset when this job started (commits stay at or
    past it), and the partition's own watermark (seconds; -inf until it has read a record or caught up)."""

    partition: int
    next_offset: int | None = None
    resumed_at: int = -1
    watermark: float = -math.inf


@dataclass(frozen=True)
class TopicPosition:
    """The checkpoint of the topic: every partition's position, since when no partition had anything new
    (wall clock, for `max_idle`), and whether this part of the work is finished."""

    partitions: tuple[PartitionPosition, ...]
    idle_since: float | None = None
    done: bool = False


class _TopicTracker(PollTracker[TopicPosition]):
    """Each call claims the offsets it read up to; a checkpoint hands them to the next call. The topic is
    never split, only checkpointed: its watermark is the oldest of its partitions'."""

    def completed(self, restriction: TopicPosition) -> float:
        return float(sum(p.next_offset or 0 for p in restriction.partitions))


class _TopicRestrictions(RestrictionProvider):
    def initial_restriction(self, element: tuple[str, tuple[int, ...]]) -> TopicPosition:
        return TopicPosition(tuple(PartitionPosition(p) for p in element[1]))

    def create_tracker(self, restriction: TopicPosition) -> _TopicTracker:
        return _TopicTracker(restriction)

    def restriction_size(self, element: tuple[str, tuple[int, ...]], restriction: TopicPosition) -> float:
        return 1.0

    def truncate(self, element: tuple[str, tuple[int, ...]], restriction: TopicPosition) -> None:
        return None  # on drain, stop reading: what was read is processed, the rest stays in Kafka


class _HeldUntilRead(WatermarkEstimatorProvider):
    """The topic's watermark starts at the beginning of time, not unset: an unset one holds nothing back."""

    def initial_estimator_state(
        self, element: tuple[str, tuple[int, ...]], restriction: TopicPosition
    ) -> Timestamp:
        return MIN_TIMESTAMP

    def create_watermark_estimator(self, estimator_state: Timestamp | None) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(estimator_state)


RESTRICTIONS = _TopicRestrictions()
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
    """The topic → the topic and its partitions (found where the job runs, so the launcher needs no access)."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config

    def process(self, topic: str) -> Iterator[tuple[str, tuple[int, ...]]]:
        found = partitions(self.config)
        log.info("kafka: reading %s, partitions %s, group %s", self.config.target, found, self.config.group)
        yield topic, tuple(found)


class _ReadTopic(beam.DoFn):
    """A splittable DoFn: each call reads what every partition of the topic has past its offset, emits
    batches stamped with their event time, moves the watermark, checkpoints the next offsets, and commits
    them to the group when the runner finalizes the bundle.

    Watermark: per partition, the newest event time read minus `max_delay` (audit records are written
    when requests complete, and shippers batch, so event times arrive somewhat out of order); while a
    partition is caught up with nothing new, the wall clock minus `max_delay`, so windows close and timers
    fire on a quiet cluster. The topic's watermark is the oldest of its partitions', and it never goes
    back. All partitions are one restriction, so that one watermark covers them: Prism keeps a single
    watermark estimate per stage, the last bundle's, so a partition read in a bundle of its own and caught
    up (on the wall clock) carried the watermark past another partition's unread backlog, making every
    record of it late (a restart's replay, under load).
    """

    def __init__(
        self,
        config: KafkaConfig,
        limits: ReadLimits,
        max_delay: float,
        max_idle: float | None,
        replay: float = 0.0,
        finalized: bool = True,
    ) -> None:
        self.config = config
        self.limits = limits
        self.max_delay = max_delay
        self.max_idle = max_idle
        self.replay = replay
        self.finalized = finalized

    def setup(self) -> None:
        self.consumers: dict[str, Any] = {}
        self.expected: dict[str, dict[int, int]] = {}  # the offsets each consumer will deliver next
        self.records = Metrics.counter("kubesigma", "kafka_records")
        self.committed = Metrics.counter("kubesigma", "kafka_offsets_committed")
        self.watermark_ms = Metrics.gauge("kubesigma", "source_watermark_ms")
        self.backlog = Metrics.gauge("kubesigma", "kafka_backlog_records")

    def teardown(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()
        self.consumers.clear()

    def _at(
        self, topic: str, positions: tuple[PartitionPosition, ...]
    ) -> tuple[Any, tuple[PartitionPosition, ...]]:
        """The topic's consumer, assigned every partition at its restriction's next offset (resolved from
        the group's committed offset, or `start`, the first time)."""
        from confluent_kafka import TopicPartition

        consumer = self.consumers.get(topic)
        if consumer is None:
            consumer = self.consumers[topic] = _consumer(self.config)
        if any(p.next_offset is None for p in positions):
            positions = tuple(
                self._resolve(consumer, topic, p) if p.next_offset is None else p for p in positions
            )
            self.expected.pop(topic, None)  # replay_start moved the consumer
        offsets = _offsets(positions)
        if self.expected.get(topic) != offsets:
            consumer.assign([TopicPartition(topic, p, offset) for p, offset in offsets.items()])
            self.expected[topic] = offsets
        return consumer, positions

    def _resolve(self, consumer: Any, topic: str, position: PartitionPosition) -> PartitionPosition:
        """Where a partition starts: after the group's committed offset (less the replay horizon), else at
        `start`."""
        from confluent_kafka import TopicPartition

        partition = position.partition
        committed = consumer.committed([TopicPartition(topic, partition)], timeout=METADATA_TIMEOUT)[0].offset
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=METADATA_TIMEOUT)
        resumed_at = position.resumed_at
        if committed >= 0:
            # A committed offset the broker no longer holds (retention) starts at the oldest record kept.
            resumed_at = max(committed, low)
            offset = replay_start(consumer, topic, partition, resumed_at, low, self.replay)
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
        return replace(position, next_offset=offset, resumed_at=resumed_at)

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        element: tuple[str, tuple[int, ...]],
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(RESTRICTIONS),
        watermark=beam.DoFn.WatermarkEstimatorParam(WATERMARKS),
    ) -> Iterator[Any]:
        topic = element[0]
        current: TopicPosition = tracker.current_restriction()
        consumer, positions = self._at(topic, current.partitions)
        read: dict[int, list[tuple[Any, RawRecord | DeadLetter]]] = {}
        for message in self._fetch(consumer):
            error = message.error()
            if error is not None:
                if error.code() == -191:  # _PARTITION_EOF: informational
                    continue
                raise RuntimeError(f"kafka {topic}/{message.partition()}: {error}")
            read.setdefault(message.partition(), []).append((message, record_of(message, self.limits)))
        now = time.time()
        moved: list[PartitionPosition] = []
        times: dict[int, list[float]] = {}
        behind = 0
        for position in positions:
            records = read.get(position.partition, [])
            offset = records[-1][0].offset() + 1 if records else position.next_offset
            assert offset is not None  # resolved by _at
            left = self._backlog(consumer, topic, position.partition, offset)
            behind += left
            mark = position.watermark
            if records:
                times[position.partition] = [event_time(message, record) for message, record in records]
                mark = max(mark, max(times[position.partition]) - self.max_delay)
            elif not left:
                # Only a caught-up partition follows the wall clock: records still to read (a backlog, a
                # replay) would otherwise all be late for the correlation and suppression stages.
                mark = max(mark, now - self.max_delay)
            moved.append(replace(position, next_offset=offset, watermark=mark))
        self.backlog.set(behind)
        # Idle only once caught up: a first fetch may come back empty while a partition has a backlog.
        idle_since = None if read or behind else (current.idle_since or now)
        stop = self.max_idle is not None and idle_since is not None and now - idle_since >= self.max_idle
        if not tracker.try_claim(TopicPosition(tuple(moved), idle_since, stop)):
            return
        self.expected[topic] = _offsets(moved)
        for partition, records in read.items():
            stamps = times[partition]
            for start in range(0, len(records), RECORD_BATCH):
                part = records[start : start + RECORD_BATCH]
                yield TimestampedValue(
                    RecordBatch(record for _, record in part), min(stamps[start : start + RECORD_BATCH])
                )
            self.records.inc(len(records))
        # Replayed records were processed before: the group's offsets stay where they were.
        commits = [(p.partition, max(p.next_offset or 0, p.resumed_at)) for p in moved if p.partition in read]
        # Runners ask every bundle of a DoFn that finalizes to finalize (Prism logs one that has no callback).
        # One that never finalizes (Flink without checkpoints) is asked nothing: the SDK keeps a bundle's
        # processor until it is finalized, so each read would build a new one (unpickling the fused
        # stage, compiling the rules, a new consumer) and keep the old for ever.
        if self.finalized:
            finalizer.register(
                _Commit(consumer, topic, commits, self.committed) if commits else _nothing_to_commit
            )
        oldest = min(p.watermark for p in moved)
        if oldest > -math.inf:
            self._advance(watermark, oldest)
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
        return max(0, high - offset) if high >= 0 else 0

    def _advance(self, watermark: Any, seconds: float) -> None:
        if advance_watermark(watermark, seconds):
            self.watermark_ms.set(int(seconds * 1000))


def _offsets(positions: Iterable[PartitionPosition]) -> dict[int, int]:
    """Partition → next offset, of positions already resolved."""
    return {p.partition: p.next_offset for p in positions if p.next_offset is not None}


def _nothing_to_commit() -> None:
    return None


class _Commit:
    """Commits partitions' offsets to the consumer group once the runner has finalized the bundle that
    read up to them (their records processed and their results durable)."""

    def __init__(self, consumer: Any, topic: str, offsets: list[tuple[int, int]], counter: Any) -> None:
        self.consumer, self.topic, self.offsets, self.counter = consumer, topic, offsets, counter

    def __call__(self) -> None:
        from confluent_kafka import TopicPartition

        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, offset) for p, offset in self.offsets],
                asynchronous=False,
            )
            self.counter.inc(len(self.offsets))
        except Exception as err:  # a later bundle commits a later offset; a restart re-reads (at least once)
            log.warning("kafka: committing %s at %s failed: %s", self.topic, self.offsets, err)


class ReadKafkaRecords(beam.PTransform):
    """An unbounded source of batches of RawRecords from every partition of a Kafka topic; with `max_idle`,
    it finishes once no partition had anything new for that long (replays, tests), which closes every
    window and ends the job. A partition with a committed group offset is re-read from `replay` seconds
    (Kafka timestamps) before it: the stateful stages' windows, rebuilt by a job without runner state.
    `finalized`: whether the runner finalizes bundles (Flink does only with checkpointing); without, no
    offset is committed to the group."""

    def __init__(
        self,
        config: KafkaConfig,
        limits: ReadLimits,
        max_delay: float = 5.0,
        max_idle: float | None = None,
        replay: float = 0.0,
        finalized: bool = True,
    ) -> None:
        super().__init__()
        self.config = config.validate()
        self.limits = limits
        self.max_delay = max_delay
        self.max_idle = max_idle
        self.replay = replay
        self.finalized = finalized

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        return (
            pbegin
            | "Topic" >> beam.Create([self.config.topic])
            | "Partitions" >> beam.ParDo(_ListPartitions(self.config))
            | "Spread" >> beam.Reshuffle()
            | "Read"
            >> beam.ParDo(
                _ReadTopic(
                    self.config, self.limits, self.max_delay, self.max_idle, self.replay, self.finalized
                )
            ).with_output_types(RecordBatch)
        )
