"""EKS against AWS APIs: CloudWatch Logs backfill (filter_log_events, pages, resume) and a subscription
filter delivering into Kinesis, read back and decoded.

moto in server mode stands in for AWS (no AWS account can be reached from here); it serves the real
wire protocol to the real boto3 clients, which find it through AWS_ENDPOINT_URL like any endpoint.
moto ignores logStreamNamePrefix and JSON filter patterns: the backfill filters on the client side too.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter

import boto3
import orjson

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.formats.cloudwatch import decode_kinesis_data
from kubesigma.connectors.model import AuditEvent, Skipped
from kubesigma.connectors.sources.files import read_file
from kubesigma.connectors.sources.kinesis import read_stream, shard_ids
from kubesigma.pipeline.commands.backfill import run_backfill_eks

REGION = "eu-west-1"
CLUSTER = "falco-eks"
LOG_GROUP = f"/aws/eks/{CLUSTER}/cluster"
AUDIT_STREAM = "kube-apiserver-audit-0a1b2c3d4e5f"
SINCE = "6h"
# CloudWatch refuses events older than 14 days: the 2018 traces are ingested at recent times, in order.
BASE_MS = int(time.time() * 1000) - 3_600_000


_ORDER: dict[str, int] = {}


def _millis(event) -> int:
    """Ingestion time of an event: BASE_MS plus a second per event in trace order."""
    key = event["auditID"] + event["stage"] + event.get("stageTimestamp", "")
    if key not in _ORDER:
        _ORDER[key] = len(_ORDER)
    return BASE_MS + 1000 * _ORDER[key]


def _by_time(log_event: dict) -> int:
    return log_event["timestamp"]


def _put_audit_log(falco, extra_streams=True):
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=AUDIT_STREAM)
    events = sorted(
        ({"timestamp": _millis(e), "message": orjson.dumps(e).decode()} for e in falco),
        key=_by_time,
    )
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=AUDIT_STREAM, logEvents=events)
    if extra_streams:
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="authenticator-99aa")
        logs.put_log_events(
            logGroupName=LOG_GROUP,
            logStreamName="authenticator-99aa",
            logEvents=[{"timestamp": events[0]["timestamp"], "message": 'level=info msg="access granted"'}],
        )
    return logs


def _decoded(path):
    return [o for record in read_file(str(path)) for o in decode_record(record)]


def test_backfill_writes_every_audit_event_of_the_window_and_nothing_else(aws, falco, tmp_path):
    _put_audit_log(falco)
    out = tmp_path / "eks.jsonl.gz"
    assert run_backfill_eks(CLUSTER, REGION, SINCE, "2030-01-01T00:00:00Z", str(out)) == 0
    events = _decoded(out)
    assert Counter(type(e).__name__ for e in events) == {"AuditEvent": 51}
    assert sorted(e.document["auditID"] for e in events) == sorted(e["auditID"] for e in falco)


def test_backfilled_events_carry_account_region_and_cluster(aws, falco, tmp_path):
    _put_audit_log(falco, extra_streams=False)
    out = tmp_path / "eks.jsonl"
    run_backfill_eks(CLUSTER, REGION, SINCE, None, str(out))
    clouds = {(e.cloud.provider, e.cloud.account_id, e.cloud.region, e.cluster) for e in _decoded(out)}
    assert clouds == {("aws", "123456789012", REGION, CLUSTER)}


def test_backfill_keeps_to_the_time_window(aws, falco, tmp_path):
    _put_audit_log(falco, extra_streams=False)
    cut = sorted(_millis(e) for e in falco)[20]
    from datetime import UTC, datetime

    since_text = datetime.fromtimestamp(cut / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = tmp_path / "eks.jsonl"
    run_backfill_eks(CLUSTER, REGION, since_text, None, str(out))
    assert len(_decoded(out)) == sum(1 for e in falco if _millis(e) >= cut)


def test_backfill_follows_every_page(aws, falco):
    _put_audit_log(falco, extra_streams=False)
    calls = []
    real = boto3.client("logs", region_name=REGION)

    class Counting:
        exceptions = real.exceptions

        def __getattr__(self, name):
            return getattr(real, name)

        def filter_log_events(self, **kwargs):
            calls.append(kwargs)
            return real.filter_log_events(**kwargs)

    from kubesigma.connectors.sources import backfill

    pages = list(
        backfill.filter_eks_pages(CLUSTER, REGION, backfill_since(), client=Counting(), page_limit=7)
    )
    assert len(calls) == 8  # 51 events, 7 a page
    assert sum(len(env["logEvents"]) for envs, _ in pages for env in envs) == 51
    assert all("nextToken" in c for c in calls[1:])


def backfill_since():
    from datetime import UTC, datetime

    return datetime.fromtimestamp(BASE_MS / 1000 - 60, UTC)


def test_interrupted_backfill_resumes_after_its_last_page(aws, falco, tmp_path):
    _put_audit_log(falco, extra_streams=False)
    from kubesigma.connectors.sources import backfill

    checkpoint = tmp_path / "eks.checkpoint.json"
    out = tmp_path / "eks.jsonl.gz"
    first = backfill.filter_eks_pages(CLUSTER, REGION, backfill_since(), checkpoint=checkpoint, page_limit=10)
    with gzip.open(out, "wb") as sink:
        for _ in range(2):  # two pages written, then the process "dies"
            envelopes, state = next(first)
            sink.write(b"".join(orjson.dumps(e) + b"\n" for e in envelopes))
            state.save(checkpoint)
    assert json.loads(checkpoint.read_text())["written"] == 20
    # Run again as the command: the relative --since resumes the window the checkpoint recorded.
    assert run_backfill_eks(CLUSTER, REGION, SINCE, None, str(out), str(checkpoint)) == 0
    ids = [e.document["auditID"] + e.document["stage"] for e in _decoded(out)]
    assert sorted(ids) == sorted(e["auditID"] + e["stage"] for e in falco)
    assert json.loads(checkpoint.read_text())["complete"] is True


def test_finished_backfill_run_again_writes_nothing_more(aws, falco, tmp_path):
    _put_audit_log(falco, extra_streams=False)
    checkpoint, out = tmp_path / "c.json", tmp_path / "eks.jsonl"
    run_backfill_eks(CLUSTER, REGION, SINCE, None, str(out), str(checkpoint))
    run_backfill_eks(CLUSTER, REGION, SINCE, None, str(out), str(checkpoint))
    assert len(_decoded(out)) == 51


def test_checkpoint_of_another_backfill_is_refused(aws, falco, tmp_path, capsys):
    _put_audit_log(falco, extra_streams=False)
    checkpoint, out = tmp_path / "c.json", tmp_path / "eks.jsonl"
    run_backfill_eks(CLUSTER, REGION, "2026-11-01T00:00:00Z", None, str(out), str(checkpoint))
    assert run_backfill_eks(CLUSTER, REGION, "2026-11-02T00:00:00Z", None, str(out), str(checkpoint)) == 2
    assert "belongs to another backfill" in capsys.readouterr().err


def test_missing_log_group_fails_with_a_message(aws, tmp_path, capsys):
    assert run_backfill_eks("no-such-cluster", REGION, SINCE, None, str(tmp_path / "o.jsonl")) == 2
    assert "/aws/eks/no-such-cluster/cluster does not exist" in capsys.readouterr().err


def test_time_without_zone_is_refused(aws, tmp_path, capsys):
    assert run_backfill_eks(CLUSTER, REGION, "2026-01-01T00:00:00", None, str(tmp_path / "o.jsonl")) == 2
    assert "timezone" in capsys.readouterr().err


# ------------------------------------------------------------------ Kinesis


def _subscribe_to_kinesis(logs, stream="eks-audit"):
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["StreamARN"]
    logs.put_subscription_filter(
        logGroupName=LOG_GROUP,
        filterName="kubesigma",
        filterPattern="",
        destinationArn=arn,
        roleArn="arn:aws:iam::123456789012:role/cwl-to-kinesis",
    )
    return kinesis


def test_subscription_delivers_gzip_envelopes_that_decode_to_the_events(aws, falco):
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=AUDIT_STREAM)
    kinesis = _subscribe_to_kinesis(logs)
    _put_audit_log_events(logs, falco[:10])
    shard = shard_ids("eks-audit", client=kinesis)[0]
    iterator = kinesis.get_shard_iterator(
        StreamName="eks-audit", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert records and records[0]["Data"][:2] == b"\x1f\x8b"
    outcomes = [o for r in records for o in decode_kinesis_data(r["Data"], _source(r), region=REGION)]
    events = [o for o in outcomes if isinstance(o, AuditEvent)]
    assert sorted(e.document["auditID"] for e in events) == sorted(e["auditID"] for e in falco[:10])
    assert {(e.cloud.provider, e.cloud.region, e.cluster) for e in events} == {("aws", REGION, CLUSTER)}
    assert all(isinstance(o, AuditEvent | Skipped) for o in outcomes)


def _source(record):
    from kubesigma.connectors.model import Source

    return Source("kinesis://eks-audit/shardId-000000000000", message_id=record["SequenceNumber"])


def _put_audit_log_events(logs, events):
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=AUDIT_STREAM,
        logEvents=sorted(
            ({"timestamp": _millis(e), "message": orjson.dumps(e).decode()} for e in events),
            key=_by_time,
        ),
    )


def test_kinesis_reader_resumes_after_the_last_sequence_read(aws, falco, tmp_path):
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=AUDIT_STREAM)
    _subscribe_to_kinesis(logs)
    checkpoint = tmp_path / "kinesis.json"
    _put_audit_log_events(logs, falco[:5])
    first = list(read_stream("eks-audit", region=REGION, checkpoint=checkpoint, poll_interval=0))
    _put_audit_log_events(logs, falco[5:12])
    second = list(read_stream("eks-audit", region=REGION, checkpoint=checkpoint, poll_interval=0))

    def audit_ids(records):
        return sorted(
            o.document["auditID"] for r in records for o in decode_record(r) if isinstance(o, AuditEvent)
        )

    assert audit_ids(first) == sorted(e["auditID"] for e in falco[:5])
    assert audit_ids(second) == sorted(e["auditID"] for e in falco[5:12])


def test_beam_kinesis_read_gives_batches_that_decode_to_the_events(aws, falco):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    from kubesigma.connectors.sources.kinesis import ReadKinesisRecords

    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=AUDIT_STREAM)
    _subscribe_to_kinesis(logs)
    _put_audit_log_events(logs, falco[:8])

    def audit_ids(batch):
        for record in batch:
            for outcome in decode_record(record):
                if isinstance(outcome, AuditEvent):
                    yield (outcome.document["auditID"], outcome.cloud.region)

    with beam.Pipeline(options=PipelineOptions(runner="FnApiRunner")) as p:
        ids = p | ReadKinesisRecords("eks-audit", region=REGION) | beam.FlatMap(audit_ids)
        assert_that(ids, equal_to([(e["auditID"], REGION) for e in falco[:8]]))
