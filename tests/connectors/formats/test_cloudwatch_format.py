"""EKS audit logs as CloudWatch Logs subscription payloads: envelopes, control messages, Kinesis data,
Firehose delivery files, and messages cut at CloudWatch's event size limit."""

from __future__ import annotations

import base64
import gzip
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesigma.connectors.delivery import as_cloudwatch_envelope, as_control_message, as_kinesis_data
from kubesigma.connectors.formats import decode_record, decode_value
from kubesigma.connectors.formats.cloudwatch import (
    EVENT_SIZE_LIMIT,
    cluster_of_log_group,
    decode_kinesis_data,
)
from kubesigma.connectors.model import AuditEvent, DeadLetter, RawRecord, Skipped, Source
from kubesigma.connectors.sources.files import read_file
from support.audit_records import audit_event

SOURCE = Source("kinesis://eks-audit/shardId-000000000000", message_id="4959")


def _read_all(path):
    outcomes: list = []
    for record in read_file(str(path)):
        outcomes.extend([record] if isinstance(record, DeadLetter) else decode_record(record))
    return outcomes


def test_falco_events_in_cloudwatch_gzip_file_decode_to_the_same_51_events(falco, falco_cloudwatch_gz):
    outcomes = _read_all(falco_cloudwatch_gz)
    assert Counter(type(o).__name__ for o in outcomes) == {"AuditEvent": 51}
    assert [o.document for o in outcomes] == falco


def test_falco_events_from_cloudwatch_keep_their_native_identity_and_time(falco, falco_cloudwatch_gz):
    native = [o for e in falco for o in decode_value(e, Source("native"))]
    wrapped = _read_all(falco_cloudwatch_gz)
    assert [(o.identity, o.event_id, o.time) for o in wrapped] == [
        (o.identity, o.event_id, o.time) for o in native
    ]


def test_falco_events_from_cloudwatch_carry_aws_account_and_cluster(falco_cloudwatch_gz):
    for event in _read_all(falco_cloudwatch_gz):
        assert (event.cloud.provider, event.cloud.account_id, event.cluster) == (
            "aws",
            "111122223333",
            "falco-eks",
        )


def test_each_log_event_is_sourced_by_its_position_in_the_envelope(falco_cloudwatch_gz):
    sources = [o.source for o in _read_all(falco_cloudwatch_gz)]
    assert (sources[0].line, sources[0].item) == (1, 0)
    assert (sources[8].line, sources[8].item) == (2, 1)


def test_cluster_comes_from_the_eks_log_group_name():
    assert cluster_of_log_group("/aws/eks/prod-eu-1/cluster") == "prod-eu-1"
    assert cluster_of_log_group("/aws/lambda/prod-eu-1") is None


def test_control_message_is_one_skipped_record():
    outcomes = list(decode_value(as_control_message(), SOURCE))
    assert len(outcomes) == 1 and isinstance(outcomes[0], Skipped)
    assert "CONTROL_MESSAGE" in outcomes[0].reason


def test_authenticator_stream_lines_are_skipped_not_dead_lettered():
    envelope = as_cloudwatch_envelope(['time="2026-11-28T10:00:00Z" level=info msg="access granted"'])
    envelope["logStream"] = "authenticator-0123456789abcdef"
    (outcome,) = decode_value(envelope, SOURCE)
    assert isinstance(outcome, Skipped)


def test_non_json_message_on_audit_stream_is_dead_lettered_with_its_position():
    (outcome,) = decode_value(as_cloudwatch_envelope(["not json at all"]), SOURCE)
    assert isinstance(outcome, DeadLetter)
    assert "not valid JSON" in outcome.reason and outcome.source.item == 0


def test_kinesis_data_gzip_decodes_to_events_with_region(falco):
    data = as_kinesis_data(as_cloudwatch_envelope(falco[:3], cluster="c1", account="111122223333"))
    outcomes = list(decode_kinesis_data(data, SOURCE, region="eu-west-1"))
    assert [o.document for o in outcomes] == falco[:3]
    assert {o.cloud for o in outcomes} == {outcomes[0].cloud}
    assert (outcomes[0].cloud.region, outcomes[0].cluster) == ("eu-west-1", "c1")


def test_kinesis_data_base64_as_lambda_receives_it_decodes(falco):
    data = base64.b64encode(as_kinesis_data(as_cloudwatch_envelope(falco[:2])))
    assert [o.document for o in decode_kinesis_data(data, SOURCE)] == falco[:2]


def test_kinesis_control_message_is_skipped():
    (outcome,) = decode_kinesis_data(as_kinesis_data(as_control_message()), SOURCE)
    assert isinstance(outcome, Skipped)


def test_cut_gzip_kinesis_data_is_dead_lettered_with_reason(falco):
    data = as_kinesis_data(as_cloudwatch_envelope(falco[:5]))
    (outcome,) = decode_kinesis_data(data[: len(data) // 2], SOURCE)
    assert isinstance(outcome, DeadLetter) and "gzip" in outcome.reason
    assert outcome.source == SOURCE


def test_gzip_bomb_in_kinesis_data_is_refused():
    data = gzip.compress(
        b'{"messageType":"DATA_MESSAGE","logEvents":[],"x":"' + b"a" * (20 * 1024 * 1024) + b'"}'
    )
    (outcome,) = decode_kinesis_data(data, SOURCE)
    assert isinstance(outcome, DeadLetter) and "over" in outcome.reason


# ------------------------------------------------------------------ messages cut at the size limit


def _cut_outcome(message: str) -> AuditEvent | DeadLetter:
    outcomes = list(decode_value(as_cloudwatch_envelope([message], cluster="c1"), SOURCE))
    assert len(outcomes) == 1
    return outcomes[0]


def test_message_cut_at_cloudwatch_limit_still_yields_the_action(exec_event):
    message = orjson.dumps(exec_event).decode()
    assert len(message) > EVENT_SIZE_LIMIT
    event = _cut_outcome(message[: EVENT_SIZE_LIMIT - 26])
    assert isinstance(event, AuditEvent) and event.truncated
    doc = event.document
    assert (doc["verb"], doc["objectRef"], doc["user"]) == (
        exec_event["verb"],
        exec_event["objectRef"],
        exec_event["user"],
    )
    assert (event.source_ip, event.user_agent, event.event_id) == (
        "203.0.113.9",
        exec_event["userAgent"],
        exec_event["auditID"],
    )


def test_cut_message_without_timestamps_takes_the_log_event_time(exec_event):
    message = orjson.dumps(exec_event).decode()
    envelope = as_cloudwatch_envelope([message[:2000]])
    envelope["logEvents"][0]["timestamp"] = 1_795_860_000_123
    (event,) = decode_value(envelope, SOURCE)
    assert event.time == pytest.approx(1_795_860_000.123)
    assert "stageTimestamp" not in event.document


def test_cut_message_before_audit_id_is_dead_lettered(exec_event):
    message = orjson.dumps(exec_event).decode()
    outcome = _cut_outcome(message[:40])
    assert isinstance(outcome, DeadLetter) and "not valid JSON" in outcome.reason


def test_cut_secret_event_keeps_object_ref_and_verb():
    secret = audit_event(
        verb="create",
        namespace="prod",
        name="db",
        uri="/api/v1/namespaces/prod/secrets",
        user="ci-bot",
        ip="10.1.2.3",
        level="Request",
        request_object={"kind": "Secret", "data": {"blob": "QUJD" * 80_000}},
        auditID="0d6e2f6e-1111-4a4a-8b8b-123456789abc",
    )
    event = _cut_outcome(orjson.dumps(secret).decode()[: EVENT_SIZE_LIMIT - 26])
    assert event.truncated and event.document["objectRef"]["resource"] == "secrets"
    assert event.document["verb"] == "create"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(min_value=0.0, max_value=0.999999))
def test_message_cut_anywhere_never_crashes_and_keeps_the_action_once_written(exec_event, cut):
    # A smaller request object keeps each example fast; the positions cover every part of the Event.
    event = {
        **exec_event,
        "requestObject": {**exec_event["requestObject"], "command": ["/bin/sh", "y" * 3000]},
    }
    message = orjson.dumps(event).decode()
    position = int(cut * len(message))
    outcome = _cut_outcome(message[:position])
    assert isinstance(outcome, AuditEvent | DeadLetter)
    object_ref_end = message.index('"responseStatus"')
    if position >= object_ref_end:
        assert isinstance(outcome, AuditEvent) and outcome.truncated
        doc = outcome.document
        assert (doc["verb"], doc["user"], doc["objectRef"]) == (
            event["verb"],
            event["user"],
            event["objectRef"],
        )
    elif isinstance(outcome, AuditEvent):
        assert outcome.truncated and outcome.event_id == event["auditID"]


def test_firehose_file_of_concatenated_envelopes_on_one_line_is_read(tmp_path, falco):
    line = b"".join(orjson.dumps(as_cloudwatch_envelope(falco[i : i + 2])) for i in (0, 2, 4))
    path = tmp_path / "firehose-delivery"
    path.write_bytes(line)
    outcomes = _read_all(path)
    assert [o.document for o in outcomes] == falco[:6]


def test_raw_record_of_envelope_counts_every_log_event(falco):
    data = orjson.dumps(as_cloudwatch_envelope(falco[:4]))
    outcomes = list(decode_record(RawRecord(data, Source("f"))))
    assert len(outcomes) == 4


def test_cut_message_with_pathological_nesting_is_recovered_without_crashing():
    head = '{"kind":"Event","auditID":"a1","stage":"ResponseComplete","verb":"get","user":{"username":"u"},'
    message = head + '"requestObject":' + "[" * 200_000
    envelope = as_cloudwatch_envelope([message])
    envelope["logEvents"][0]["timestamp"] = 1_795_860_000_000
    (event,) = decode_value(envelope, SOURCE)
    assert event.truncated and event.document["verb"] == "get"


def test_number_cut_at_the_end_of_the_prefix_is_dropped_not_shortened():
    from kubesigma.connectors.formats._prefix import parse_prefix

    assert parse_prefix('{"auditID":"a","responseStatus":{"code":40') == {
        "auditID": "a",
        "responseStatus": {},
    }
