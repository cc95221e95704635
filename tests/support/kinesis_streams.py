"""A Kinesis stream for tests on moto's server (a test double: real Kinesis cannot be reached from
here), with moto's resharding corrected to what Kinesis documents.

moto's SplitShard moves the parent's records into the children under new sequence numbers, and its
MergeShards copies both parents' records into the child; and it routes new records to a closed parent
when its hash range matches. Kinesis does none of this: a closed parent keeps its records (readable
until retention expires) and takes no more, and the children hold only records put after the resharding.
`correct_moto_resharding` patches the in-process moto server (the `moto_endpoint` fixture runs it in a thread of
the test process) so a reader is tested against the documented behaviour, not against moto's copy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest

STREAM = "eks-audit"


def correct_moto_resharding(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.kinesis import models
    from moto.kinesis.models import Stream

    split, merge = Stream.split_shard, Stream.merge_shards

    def parents_keep_their_records(reshard: Any, *parent_ids: str) -> Any:
        def patched(self: Any, *args: Any) -> None:
            parents = [self.shards[args[i]] for i in range(len(parent_ids))]
            kept = [p.records for p in parents]
            for parent in parents:
                parent.records = OrderedDict()  # nothing for moto to move or copy
            try:
                reshard(self, *args)
            finally:
                for parent, records in zip(parents, kept, strict=True):
                    parent.records = records

        return patched

    monkeypatch.setattr(Stream, "split_shard", parents_keep_their_records(split, "parent"))
    monkeypatch.setattr(Stream, "merge_shards", parents_keep_their_records(merge, "one", "other"))

    def open_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str | None) -> Any:
        digest = models.md5_hash(partition_key.encode("utf-8")).hexdigest()
        key = int(explicit_hash_key) if explicit_hash_key else int(digest, 16)
        return next(
            (s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash), None
        )

    monkeypatch.setattr(Stream, "get_shard_for_key", open_shard_for_key)


def open_shards(kinesis: Any, stream: str = STREAM) -> list[str]:
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return [s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def split(kinesis: Any, shard: str, stream: str = STREAM) -> None:
    """Splits a shard in the middle of its hash key range."""
    [described] = [s for s in kinesis.list_shards(StreamName=stream)["Shards"] if s["ShardId"] == shard]
    keys = described["HashKeyRange"]
    middle = (int(keys["StartingHashKey"]) + int(keys["EndingHashKey"])) // 2
    kinesis.split_shard(StreamName=stream, ShardToSplit=shard, NewStartingHashKey=str(middle))


def merge(kinesis: Any, stream: str = STREAM) -> None:
    one, other = open_shards(kinesis, stream)
    kinesis.merge_shards(StreamName=stream, ShardToMerge=one, AdjacentShardToMerge=other)


def key_numbers(pairs: Iterator[tuple[str, int]]) -> dict[str, list[int]]:
    """Numbers per partition key, in the order they were read."""
    out: dict[str, list[int]] = {}
    for key, n in pairs:
        out.setdefault(key, []).append(n)
    return out
