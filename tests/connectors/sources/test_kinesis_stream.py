"""The unbounded Kinesis reader one poll at a time: it follows splits and merges (children only after
their parents are drained, so each partition key keeps its order), resumes after the sequence numbers
of its checkpoint, and says where a malformed record was read.

moto's Kinesis in server mode stands in for AWS (a test double: no Kinesis can be reached from here),
reached by the real boto3 client through AWS_ENDPOINT_URL; its resharding is corrected to what Kinesis
documents (support/kinesis_streams.py).
"""

from __future__ import annotations

from typing import Any

import boto3
import orjson
import pytest

from kubesigma.connectors.model import DeadLetter, RawRecord
from kubesigma.connectors.sources.kinesis import (
    KinesisRestriction,
    ShardCheckpoint,
    ShardPoller,
    load_restriction,
)
from support.kinesis_streams import STREAM, correct_moto_resharding, key_numbers, merge, open_shards, split

KEYS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


@pytest.fixture
def kinesis(aws: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    correct_moto_resharding(monkeypatch)
    return boto3.client("kinesis")


class Producer:
    def __init__(self, kinesis: Any) -> None:
        self.kinesis = kinesis
        self.n = 0

    def put(self, count: int) -> None:
        for _ in range(count):
            key = KEYS[self.n % len(KEYS)]
            data = orjson.dumps({"key": key, "n": self.n})
            self.kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey=key)
            self.n += 1


def pairs(records: list[RawRecord | DeadLetter]) -> list[tuple[str, int]]:
    return [(r.value["key"], r.value["n"]) for r in records if isinstance(r, RawRecord)]


def poll_once(poller: ShardPoller, restriction: KinesisRestriction) -> list[RawRecord | DeadLetter]:
    reads, throttled = poller.poll(restriction)
    assert not throttled
    return [record for read in reads for _, record, _ in read.records]


def poll_until_quiet(poller: ShardPoller, restriction: KinesisRestriction) -> list[RawRecord | DeadLetter]:
    """Polls until two polls in a row read nothing (a drained parent opens its children one poll later)."""
    out: list[RawRecord | DeadLetter] = []
    quiet = 0
    for _ in range(50):
        got = poll_once(poller, restriction)
        out.extend(got)
        quiet = 0 if got else quiet + 1
        if quiet == 2:
            return out
    raise AssertionError("the stream never went quiet")


def test_a_split_mid_stream_loses_nothing_and_keeps_each_key_in_order(kinesis: Any) -> None:
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    producer = Producer(kinesis)
    producer.put(30)
    poller, restriction = ShardPoller(STREAM, None, kinesis, limit=7), KinesisRestriction()
    read = poll_once(poller, restriction)  # 7 of the parent's 30 read when the split happens
    [parent] = open_shards(kinesis)
    split(kinesis, parent)
    producer.put(30)  # into the two children
    read += poll_until_quiet(poller, restriction)
    assert sorted(n for _, n in pairs(read)) == list(range(60))
    assert all(numbers == sorted(numbers) for numbers in key_numbers(iter(pairs(read))).values())
    assert restriction.drained == {parent}
    assert len(restriction.positions) == 2  # one position per child


def test_a_merge_mid_stream_loses_nothing_and_keeps_each_key_in_order(kinesis: Any) -> None:
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    producer = Producer(kinesis)
    producer.put(40)
    poller, restriction = ShardPoller(STREAM, None, kinesis, limit=5), KinesisRestriction()
    read = poll_once(poller, restriction)
    parents = set(open_shards(kinesis))
    merge(kinesis)
    producer.put(40)  # into the merged child
    read += poll_until_quiet(poller, restriction)
    assert sorted(n for _, n in pairs(read)) == list(range(80))
    assert all(numbers == sorted(numbers) for numbers in key_numbers(iter(pairs(read))).values())
    assert restriction.drained == parents


def test_a_restart_resumes_after_the_checkpointed_sequence_numbers(kinesis: Any, tmp_path) -> None:
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    producer = Producer(kinesis)
    producer.put(20)
    checkpoint = str(tmp_path / "kinesis.json")
    first = KinesisRestriction()
    read = poll_until_quiet(ShardPoller(STREAM, None, kinesis), first)
    ShardCheckpoint(checkpoint, 1, first.positions, frozenset(first.drained)).save()
    producer.put(20)
    split(kinesis, open_shards(kinesis)[0])
    producer.put(20)
    resumed = load_restriction(checkpoint)
    assert resumed.positions == first.positions
    again = poll_until_quiet(ShardPoller(STREAM, None, kinesis), resumed)
    assert sorted(n for _, n in pairs(read)) == list(range(20))
    assert sorted(n for _, n in pairs(again)) == list(range(20, 60))


def test_a_malformed_record_is_dead_lettered_with_stream_shard_and_sequence(kinesis: Any) -> None:
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    put = kinesis.put_record(StreamName=STREAM, Data=b"\x1f\x8b not really gzip", PartitionKey="k")
    [bad] = poll_once(ShardPoller(STREAM, None, kinesis), KinesisRestriction())
    assert isinstance(bad, DeadLetter)
    assert bad.source.uri == f"kinesis://{STREAM}/{put['ShardId']}"
    assert bad.source.message_id == put["SequenceNumber"]
    assert "gzip" in bad.reason


class Refusing:
    """The real client, but the next GetRecords calls fail with `error` (Kinesis's throttling and
    iterator expiry cannot be provoked in moto)."""

    def __init__(self, kinesis: Any, error: str, times: int) -> None:
        self.real = kinesis
        self.exceptions = kinesis.exceptions
        self.error = getattr(kinesis.exceptions, error)
        self.times = times
        self.iterator_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        self.iterator_calls += 1
        return self.real.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs: Any) -> Any:
        if self.times:
            self.times -= 1
            raise self.error({"Error": {"Code": self.error.__name__, "Message": "refused"}}, "GetRecords")
        return self.real.get_records(**kwargs)


def test_a_throttled_shard_is_read_again_later_from_where_it_was(kinesis: Any) -> None:
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    Producer(kinesis).put(5)
    client = Refusing(kinesis, "ProvisionedThroughputExceededException", times=1)
    poller, restriction = ShardPoller(STREAM, None, client), KinesisRestriction()
    reads, throttled = poller.poll(restriction)
    assert throttled and reads == [] and restriction.positions == {}
    assert sorted(n for _, n in pairs(poll_once(poller, restriction))) == list(range(5))


def test_an_expired_shard_iterator_is_renewed_at_the_same_position(kinesis: Any) -> None:
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    producer = Producer(kinesis)
    producer.put(5)
    client = Refusing(kinesis, "ExpiredIteratorException", times=0)
    poller, restriction = ShardPoller(STREAM, None, client), KinesisRestriction()
    poll_once(poller, restriction)
    producer.put(5)
    client.times = 1  # the kept iterator has expired (they live five minutes)
    assert sorted(n for _, n in pairs(poll_once(poller, restriction))) == list(range(5, 10))
    assert client.iterator_calls == 2  # the first, and the renewal; otherwise kept between polls


def test_the_watermark_holds_while_a_closed_shard_is_drained_before_its_children(kinesis: Any) -> None:
    from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
    from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker

    from kubesigma.connectors.sources.kinesis import _PollKinesis
    from kubesigma.connectors.sources.polling import PollTracker

    def poll(restriction: KinesisRestriction) -> KinesisRestriction:
        tracker = ThreadsafeRestrictionTracker(PollTracker(restriction))
        list(source.process((STREAM, ""), RestrictionTrackerView(tracker), watermark))
        status = tracker.deferred_status()
        assert status is not None
        return status[0]

    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    producer = Producer(kinesis)
    producer.put(3)
    source = _PollKinesis(None, interval=1.0, max_delay=5.0, max_idle=None)
    source.setup()
    watermark = ManualWatermarkEstimator(None)
    restriction = poll(KinesisRestriction())
    caught_up = watermark.current_watermark()  # the clock minus 5s: the only shard is caught up
    split(kinesis, open_shards(kinesis)[0])
    producer.put(3)
    restriction = poll(restriction)  # the parent is found drained: its children are read next poll
    assert restriction.drained and watermark.current_watermark() == caught_up
    restriction = poll(restriction)
    assert watermark.current_watermark() > caught_up


def test_without_streaming_the_job_reads_every_shard_to_its_tip_and_ends(kinesis: Any, tmp_path) -> None:
    import io

    from kubesigma.connectors.delivery import as_cloudwatch_envelope, as_kinesis_data
    from kubesigma.pipeline.run import run
    from support.audit_records import T0, audit_event

    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    for i in range(12):
        envelope = as_cloudwatch_envelope([audit_event(i, at=T0 + i, name=f"secret-{i}")], cluster="eks")
        kinesis.put_record(StreamName=STREAM, Data=as_kinesis_data(envelope), PartitionKey=f"stream-{i}")
    argv = [
        "--kinesis-stream", STREAM, "--runner=FnApiRunner",
        "--alerts-out", str(tmp_path / "alerts.jsonl"), "--dead-letter", str(tmp_path / "dead.jsonl"),
    ]  # fmt: skip
    report = run(argv, io.StringIO())
    assert (report.counters["read"], report.counters["normalized"]) == (12, 12)
    alerts = [orjson.loads(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    assert "Kubernetes Secret Enumeration By One Identity" in {a["rule"]["name"] for a in alerts}
