"""EKS audit logs from a Kinesis data stream that a CloudWatch Logs subscription filter feeds: each
Kinesis record holds one gzip subscription envelope. Two reads, both boto3 with credentials from the AWS
default chain: a bounded one that reads every shard up to the tip (batch, catch-up runs), and an
unbounded splittable DoFn that keeps polling, follows splits and merges, and checkpoints per-shard
sequence numbers (`kubesigma run --streaming --kinesis-stream`). docs/cloud-sources.md explains why
Firehose to S3 is the default streaming path and this the other."""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from kubesigma.connectors.formats.cloudwatch import kinesis_record
from kubesigma.connectors.model import DeadLetter, RawRecord, Source
from kubesigma.connectors.sources import RECORD_BATCH, RecordBatch
from kubesigma.connectors.sources.polling import PollTracker, advance_watermark

log = logging.getLogger("kubesigma")

GET_RECORDS_LIMIT = 10_000  # the API's maximum per call
MAX_EMPTY_POLLS = 3  # reading a shard stops at its tip: this many empty answers with nothing behind


@dataclass
class ShardPositions:
    """Last sequence number read per shard, and the closed shards read to their end, kept in a JSON
    file so the next run resumes after them."""

    path: Path | None = None
    positions: dict[str, str] = field(default_factory=dict)
    drained: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: str | Path | None) -> ShardPositions:
        if path is None:
            return cls()
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"Kinesis checkpoint {path} is unreadable: {err}") from err
        shards = {str(k): str(v) for k, v in data.get("shards", {}).items()}
        return cls(path, shards, {str(s) for s in data.get("drained", [])})

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        state = {"shards": self.positions, "drained": sorted(self.drained)}
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a crash leaves the old checkpoint or the new one


def kinesis_client(region: str | None, client: Any = None) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("kinesis", region_name=region)


def with_region(record: RawRecord | DeadLetter, region: str | None) -> RawRecord | DeadLetter:
    """Envelopes do not name their region; the stream's is added (the key the decoder reads)."""
    if (
        region
        and isinstance(record, RawRecord)
        and isinstance(record.value, dict)
        and "region" not in record.value
    ):
        return RawRecord(record.data, record.source, {**record.value, "region": region})
    return record


def read_shard(
    stream: str,
    shard_id: str,
    *,
    region: str | None = None,
    client: Any = None,
    after_sequence: str | None = None,
    iterator_type: str = "TRIM_HORIZON",
    max_empty_polls: int = MAX_EMPTY_POLLS,
    poll_interval: float = 0.2,
) -> Iterator[tuple[str, RawRecord | DeadLetter]]:
    """(sequence number, record) for each Kinesis record of a shard, oldest first, until the tip."""
    kinesis = kinesis_client(region, client)
    if after_sequence:
        args = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after_sequence}
    else:
        args = {"ShardIteratorType": iterator_type}
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, **args)["ShardIterator"]
    empty = 0
    while iterator and empty < max_empty_polls:
        answer = kinesis.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
        records = answer.get("Records", [])
        for item in records:
            sequence = item["SequenceNumber"]
            source = Source(f"kinesis://{stream}/{shard_id}", message_id=sequence)
            yield sequence, with_region(kinesis_record(item["Data"], source), region)
        iterator = answer.get("NextShardIterator")
        if records:
            empty = 0
        elif answer.get("MillisBehindLatest", 0) == 0:
            empty += 1
            if empty < max_empty_polls:
                time.sleep(poll_interval)


def shard_ids(stream: str, *, region: str | None = None, client: Any = None) -> list[str]:
    kinesis = kinesis_client(region, client)
    ids: list[str] = []
    args: dict[str, Any] = {"StreamName": stream}
    while True:
        answer = kinesis.list_shards(**args)
        ids.extend(shard["ShardId"] for shard in answer.get("Shards", []))
        token = answer.get("NextToken")
        if not token:
            return ids
        args = {"NextToken": token}


def read_stream(
    stream: str,
    *,
    region: str | None = None,
    client: Any = None,
    checkpoint: str | Path | None = None,
    **options: Any,
) -> Iterator[RawRecord | DeadLetter]:
    """Every record of every shard not read before (per the checkpoint file), up to the tip; the
    checkpoint advances after each shard's records have been handed on."""
    positions = ShardPositions.load(checkpoint)
    kinesis = kinesis_client(region, client)
    for shard in shard_ids(stream, client=kinesis):
        last = positions.positions.get(shard)
        for sequence, record in read_shard(
            stream, shard, region=region, client=kinesis, after_sequence=last, **options
        ):
            last = sequence
            yield record
        if last is not None:
            positions.positions[shard] = last
            positions.save()


class _ReadShard(beam.DoFn):
    def __init__(self, stream: str, region: str | None, max_batch: int) -> None:
        self.stream = stream
        self.region = region
        self.max_batch = max_batch

    def setup(self) -> None:
        self.client = kinesis_client(self.region)

    def process(self, shard: str) -> Iterator[RecordBatch]:
        batch = RecordBatch()
        for _, record in read_shard(self.stream, shard, region=self.region, client=self.client):
            batch.append(record)
            if len(batch) >= self.max_batch:
                yield batch
                batch = RecordBatch()
        if batch:
            yield batch


class ReadKinesisRecords(beam.PTransform):
    """Batches of RawRecords from every shard of a stream, read from the oldest record to the tip (a
    bounded catch-up read; each shard is read by one worker)."""

    def __init__(self, stream: str, region: str | None = None, max_batch: int = 500) -> None:
        super().__init__()
        self.stream = stream
        self.region = region
        self.max_batch = max_batch

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        shards = shard_ids(self.stream, region=self.region)
        return (
            pbegin
            | "Shards" >> beam.Create(shards)
            | "Spread" >> beam.Reshuffle()
            | "Read"
            >> beam.ParDo(_ReadShard(self.stream, self.region, self.max_batch)).with_output_types(RecordBatch)
        )


# -- the unbounded source --------------------------------------------------------------------------

MIN_CALL_INTERVAL = 0.2  # GetRecords allows 5 calls a second per shard
MAX_BACKOFF = 10.0  # seconds between polls while Kinesis throttles the reader


@dataclass(frozen=True)
class Shard:
    """A shard as ListShards describes it: its parents (one after a split, two after a merge) and, once
    closed by resharding, the last sequence number it will ever hold."""

    shard_id: str
    parents: tuple[str, ...] = ()
    ending_sequence: str | None = None


def list_shards(stream: str, kinesis: Any) -> list[Shard]:
    """Every shard of the stream still within retention, open and closed, parents first."""
    shards: list[Shard] = []
    args: dict[str, Any] = {"StreamName": stream}
    while True:
        answer = kinesis.list_shards(**args)
        for item in answer.get("Shards", []):
            parents = tuple(p for p in (item.get("ParentShardId"), item.get("AdjacentParentShardId")) if p)
            ending = item.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            shards.append(Shard(item["ShardId"], parents, ending))
        token = answer.get("NextToken")
        if not token:
            return sorted(shards, key=lambda s: s.shard_id)
        args = {"NextToken": token}


@dataclass
class KinesisRestriction:
    """The checkpoint of an unbounded read: the last sequence number handed on per shard, the closed
    shards read to their end, since when nothing new arrived (wall clock, for `max_idle`), the current
    throttling backoff, and whether the read is finished."""

    positions: dict[str, str] = field(default_factory=dict)
    drained: set[str] = field(default_factory=set)
    idle_since: float | None = None
    backoff: float = 0.0
    done: bool = False
    polls: int = 0  # polls that moved a position: orders the checkpoints the job commits
    stamp: float = 0.0  # newest event time read so far: when what was read is processed downstream


@dataclass(frozen=True)
class ShardCheckpoint:
    """What a poll had read, for the checkpoint file: positions and drained shards after poll `polls`."""

    path: str
    polls: int
    positions: dict[str, str]
    drained: frozenset[str]

    def save(self) -> None:
        ShardPositions(Path(self.path), dict(self.positions), set(self.drained)).save()


POSITIONS = "positions"


def load_restriction(checkpoint: str | None) -> KinesisRestriction:
    saved = ShardPositions.load(checkpoint or None)
    return KinesisRestriction(dict(saved.positions), set(saved.drained))


@dataclass
class ShardRead:
    """What one GetRecords call on a shard gave: (sequence number, record, event time) in shard order."""

    shard_id: str
    records: list[tuple[str, RawRecord | DeadLetter, float]]
    millis_behind: int  # MillisBehindLatest: how far the last record read trails the shard's tip
    newest: float | None  # newest event time read
    closed: bool = False  # closed by resharding: its children wait for it

    @property
    def caught_up(self) -> bool:
        return self.millis_behind == 0


class ShardPoller:
    """One poll of a stream: a GetRecords call on every shard that may be read now, each after the last
    sequence number handed on. A shard created by resharding is read only once its parents are drained,
    so the records of a partition key come out in the order they were put. Shard iterators are kept
    between polls (GetShardIterator is limited too) and renewed when they expire."""

    def __init__(self, stream: str, region: str | None, kinesis: Any, limit: int = GET_RECORDS_LIMIT) -> None:
        self.stream = stream
        self.region = region
        self.kinesis = kinesis
        self.limit = limit
        self.iterators: dict[str, tuple[str | None, str]] = {}  # shard -> (after sequence, iterator)
        self.announced: set[str] = set()

    def readable(self, restriction: KinesisRestriction) -> list[Shard]:
        shards = list_shards(self.stream, self.kinesis)
        known = {s.shard_id for s in shards}
        # A parent gone from the listing has aged out of retention: nothing of it is left to read.
        return [
            s
            for s in shards
            if s.shard_id not in restriction.drained
            and all(p in restriction.drained or p not in known for p in s.parents)
        ]

    def poll(self, restriction: KinesisRestriction) -> tuple[list[ShardRead], bool]:
        """The reads of this poll (updating `restriction`), and whether Kinesis throttled any of them."""
        reads: list[ShardRead] = []
        throttled = False
        for shard in self.readable(restriction):
            try:
                read = self._read(shard, restriction)
            except self.kinesis.exceptions.ProvisionedThroughputExceededException:
                throttled = True
                continue
            reads.append(read)
        return reads, throttled

    def _read(self, shard: Shard, restriction: KinesisRestriction) -> ShardRead:
        after = restriction.positions.get(shard.shard_id)
        try:
            answer = self.kinesis.get_records(
                ShardIterator=self._iterator(shard.shard_id, after), Limit=self.limit
            )
        except self.kinesis.exceptions.ExpiredIteratorException:
            self.iterators.pop(shard.shard_id, None)
            answer = self.kinesis.get_records(
                ShardIterator=self._iterator(shard.shard_id, after), Limit=self.limit
            )
        records = []
        newest = None
        for item in answer.get("Records", []):
            sequence = item["SequenceNumber"]
            source = Source(f"kinesis://{self.stream}/{shard.shard_id}", message_id=sequence)
            record = with_region(kinesis_record(item["Data"], source), self.region)
            at = event_time(record, item)
            newest = at if newest is None else max(newest, at)
            records.append((sequence, record, at))
        if records:
            if shard.shard_id not in self.announced:
                self.announced.add(shard.shard_id)
                log.info("kinesis: reading shard %s of %s", shard.shard_id, self.stream)
            restriction.positions[shard.shard_id] = records[-1][0]
        behind = int(answer.get("MillisBehindLatest", 0))
        following = answer.get("NextShardIterator")
        if following:
            self.iterators[shard.shard_id] = (restriction.positions.get(shard.shard_id), following)
        else:
            self.iterators.pop(shard.shard_id, None)
        if following is None or (shard.ending_sequence is not None and not records and not behind):
            # Closed by a split or merge and read to its end: its children may be read from now on.
            restriction.drained.add(shard.shard_id)
            restriction.positions.pop(shard.shard_id, None)
            log.info("kinesis: shard %s of %s is closed and read to its end", shard.shard_id, self.stream)
        return ShardRead(shard.shard_id, records, behind, newest, shard.ending_sequence is not None)

    def _iterator(self, shard_id: str, after: str | None) -> str:
        kept = self.iterators.get(shard_id)
        if kept is not None and kept[0] == after:
            return kept[1]
        if after:
            args = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        else:
            args = {"ShardIteratorType": "TRIM_HORIZON"}
        return self.kinesis.get_shard_iterator(StreamName=self.stream, ShardId=shard_id, **args)[
            "ShardIterator"
        ]


def event_time(record: RawRecord | DeadLetter, item: dict[str, Any]) -> float:
    """A record's event time: the oldest log event of its subscription envelope (CloudWatch stamps
    each with the audit event's time), else when Kinesis received it (control messages carry 0)."""
    if isinstance(record, RawRecord) and isinstance(record.value, dict):
        events = record.value.get("logEvents") or ()
        stamps: list[float] = [
            e["timestamp"]
            for e in events
            if isinstance(e, dict) and isinstance(e.get("timestamp"), int | float) and e["timestamp"] > 0
        ]
        if stamps:
            return min(stamps) / 1000.0
    arrived = item.get("ApproximateArrivalTimestamp")
    return arrived.timestamp() if arrived is not None else time.time()


class _KinesisRestrictions(RestrictionProvider):
    """The element is (stream, checkpoint file or ""): the read starts where the checkpoint says."""

    def initial_restriction(self, element: tuple[str, str]) -> KinesisRestriction:
        return load_restriction(element[1])

    def create_tracker(self, restriction: KinesisRestriction) -> PollTracker[KinesisRestriction]:
        return PollTracker(restriction)

    def restriction_size(self, element: tuple[str, str], restriction: KinesisRestriction) -> float:
        return 1.0

    def truncate(self, element: tuple[str, str], restriction: KinesisRestriction) -> None:
        return None  # on drain, stop polling: nothing is left to finish


RESTRICTIONS = _KinesisRestrictions()
WATERMARKS = ManualWatermarkEstimator.default_provider()


class _PollKinesis(beam.DoFn):
    """A splittable DoFn: each call polls every readable shard once, emits batches stamped with their
    event time, moves the watermark, and checkpoints the sequence numbers read.

    With a checkpoint file, each poll that moved a position also emits a ShardCheckpoint (tagged
    POSITIONS) stamped with the newest event time read so far; CommitShardPositions writes it once the
    sinks have written everything up to then. Watermark: the oldest of the shards' newest event times,
    where a caught-up shard counts as the wall clock, minus `max_delay`; it holds while a shard is
    throttled or a closed shard is drained before its children, and never goes back."""

    def __init__(self, region: str | None, interval: float, max_delay: float, max_idle: float | None) -> None:
        self.region = region
        self.interval = interval
        self.max_delay = max_delay
        self.max_idle = max_idle

    def setup(self) -> None:
        self.kinesis = kinesis_client(self.region)
        self.pollers: dict[str, ShardPoller] = {}
        self.read_counter = Metrics.counter("kubesigma", "kinesis_records")
        self.watermark_ms = Metrics.gauge("kubesigma", "source_watermark_ms")
        self.behind_ms = Metrics.gauge("kubesigma", "kinesis_millis_behind")

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        element: tuple[str, str],
        tracker=beam.DoFn.RestrictionParam(RESTRICTIONS),
        watermark=beam.DoFn.WatermarkEstimatorParam(WATERMARKS),
    ) -> Iterator[Any]:
        stream, checkpoint = element
        current: KinesisRestriction = tracker.current_restriction()
        poller = self.pollers.get(stream)
        if poller is None:
            log.info("kinesis: polling stream %s", stream)
            poller = self.pollers[stream] = ShardPoller(stream, self.region, self.kinesis)
        restriction = copy.deepcopy(current)
        reads, throttled = poller.poll(restriction)
        now = time.time()
        got = [r for read in reads for r in read.records]
        quiet = not got and not throttled and all(read.caught_up for read in reads)
        restriction.idle_since = (current.idle_since or now) if quiet else None
        restriction.backoff = (
            min(MAX_BACKOFF, max(MIN_CALL_INTERVAL, 2 * current.backoff)) if throttled else 0.0
        )
        idle = restriction.idle_since
        stop = self.max_idle is not None and idle is not None and now - idle >= self.max_idle
        restriction.done = stop
        moved = restriction.positions != current.positions or restriction.drained != current.drained
        if moved:
            restriction.polls += 1
            restriction.stamp = max([current.stamp or now - self.max_delay, *(t for _, _, t in got)])
        if not tracker.try_claim(restriction):
            return
        for start in range(0, len(got), RECORD_BATCH):
            batch = got[start : start + RECORD_BATCH]
            yield TimestampedValue(RecordBatch(r for _, r, _ in batch), min(t for _, _, t in batch))
        if moved and checkpoint:
            mark = ShardCheckpoint(
                checkpoint, restriction.polls, dict(restriction.positions), frozenset(restriction.drained)
            )
            yield pvalue.TaggedOutput(POSITIONS, TimestampedValue(mark, restriction.stamp))
        self.read_counter.inc(len(got))
        if reads:
            self.behind_ms.set(max(read.millis_behind for read in reads))
        marks = [now if read.caught_up else read.newest for read in reads]
        # While a closed shard is drained its children fill up unread, with a backlog that may be older
        # than what the parent's reads say: the watermark holds until they are read too.
        resharding = restriction.drained != current.drained or any(read.closed for read in reads)
        if marks and None not in marks and not throttled and not resharding:
            self._advance(watermark, min(m for m in marks if m is not None) - self.max_delay)
        if stop:
            return  # finished: the watermark goes to the end of time and every window closes
        behind = any(not read.caught_up or len(read.records) >= poller.limit for read in reads)
        delay = restriction.backoff or (MIN_CALL_INTERVAL if behind else self.interval)
        tracker.defer_remainder(Duration(seconds=delay))

    def _advance(self, watermark: Any, seconds: float) -> None:
        if advance_watermark(watermark, seconds):
            self.watermark_ms.set(int(seconds * 1000))


class ReadKinesisStream(beam.PTransform):
    """An unbounded source of batches of RawRecords from a Kinesis stream fed by a CloudWatch Logs
    subscription: polls every `interval` seconds, follows splits and merges, and resumes after the
    sequence numbers in `checkpoint` (a JSON file) when given. With `max_idle`, it finishes once nothing
    new arrived for that long (tests, replays), which closes every window and ends the job."""

    def __init__(
        self,
        stream: str,
        region: str | None = None,
        checkpoint: str | None = None,
        interval: float = 1.0,
        max_delay: float = 5.0,
        max_idle: float | None = None,
    ) -> None:
        super().__init__()
        if not stream:
            raise ValueError("a Kinesis stream name is required")
        if checkpoint:
            ShardPositions.load(checkpoint)  # an unreadable checkpoint fails here, before the job starts
        self.stream = stream
        self.region = region
        self.checkpoint = str(Path(checkpoint).resolve()) if checkpoint else ""
        self.positions: pvalue.PCollection | None = None  # ShardCheckpoints, once expanded
        self.interval = interval
        self.max_delay = max_delay
        self.max_idle = max_idle

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        read = (
            pbegin
            | "Stream" >> beam.Create([(self.stream, self.checkpoint)])
            | "Poll"
            >> beam.ParDo(
                _PollKinesis(self.region, self.interval, self.max_delay, self.max_idle)
            ).with_outputs(POSITIONS, main="records")
        )
        self.positions = read[POSITIONS]
        return read.records


class _CommitPositions(beam.DoFn):
    """Holds each ShardCheckpoint until the watermark (of the checkpoints and of what the sinks wrote)
    has passed its stamp plus `delay`, then writes the newest one due. Stamps never go back, so a due
    checkpoint's records, and every earlier poll's, have been written by then."""

    PENDING = ReadModifyWriteStateSpec("pending", PickleCoder())
    DUE = TimerSpec("due", TimeDomain.WATERMARK)

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def process(
        self,
        element: tuple[str, ShardCheckpoint | None],
        stamp=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        due=beam.DoFn.TimerParam(DUE),
    ) -> Iterator[Any]:
        mark = element[1]
        if mark is None:
            return  # something a sink wrote: it only moves the watermark
        waiting = [*(pending.read() or []), (float(stamp), mark)]
        pending.write(waiting)
        due.set(Timestamp.of(min(t for t, _ in waiting) + self.delay))
        yield from ()

    @on_timer(DUE)
    def commit(
        self,
        fired=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        due=beam.DoFn.TimerParam(DUE),
    ) -> Iterator[Any]:
        waiting: list[tuple[float, ShardCheckpoint]] = pending.read() or []
        ready = [mark for t, mark in waiting if t + self.delay <= float(fired)]
        newest = max((mark.polls for mark in ready), default=0)
        if ready:
            next(mark for mark in ready if mark.polls == newest).save()
        rest = [(t, mark) for t, mark in waiting if mark.polls > newest]
        pending.write(rest)
        if rest:
            due.set(Timestamp.of(min(t for t, _ in rest) + self.delay))
        yield from ()


class CommitShardPositions(beam.PTransform):
    """Writes a Kinesis read's checkpoints to its file only after its records were processed: applied to
    (checkpoints, *written), where `written` are the outputs of the sinks, whose watermark passes a time
    only once everything up to it is written; `delay` is how far behind its records the sinks' output
    can be (allowed lateness, suppression window, file window)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def expand(self, pcolls: tuple[pvalue.PCollection, ...]) -> pvalue.PCollection:
        keyed = []
        for index, pcoll in enumerate(pcolls):
            keyed.append(
                pcoll
                | f"Global{index}" >> beam.WindowInto(GlobalWindows())
                | f"Key{index}"
                >> beam.Map(lambda item, is_mark=index == 0: ("kinesis", item if is_mark else None))
            )
        return keyed | "Together" >> beam.Flatten() | "Commit" >> beam.ParDo(_CommitPositions(self.delay))
