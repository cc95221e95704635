"""EKS audit logs from a Kinesis data stream that a CloudWatch Logs subscription filter feeds: each
Kinesis record holds one gzip subscription envelope. A plain-Python shard reader (boto3, credentials
from the AWS default chain) that reads every shard up to the tip and remembers where it stopped;
docs/cloud-sources.md explains why Firehose to S3 is the default streaming path and this the other."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from kubesigma.connectors.formats.cloudwatch import kinesis_record
from kubesigma.connectors.model import DeadLetter, RawRecord, Source
from kubesigma.connectors.sources import RecordBatch

GET_RECORDS_LIMIT = 10_000  # the API's maximum per call
MAX_EMPTY_POLLS = 3  # reading a shard stops at its tip: this many empty answers with nothing behind


@dataclass
class ShardPositions:
    """Last sequence number read per shard, kept in a JSON file so the next run resumes after it."""

    path: Path | None = None
    positions: dict[str, str] = field(default_factory=dict)

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
        return cls(path, {str(k): str(v) for k, v in data.get("shards", {}).items()})

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps({"shards": self.positions}, indent=1, sort_keys=True))
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
