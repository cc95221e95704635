"""GKE audit logs from a Pub/Sub subscription fed by a log sink.

No Pub/Sub emulator can run here: the message → record step is tested directly and in a streaming
Beam pipeline (TestStream on the BundleBasedDirectRunner) that feeds it real PubsubMessage objects
carrying the real GKE samples, in place of ReadFromPubSub.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream
from apache_beam.testing.util import assert_that, equal_to

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, DeadLetter
from kubesigma.connectors.sources.pubsub import MessagesToRecords, ReadPubSubRecords, message_to_record
from support.paths import FORMAT_SAMPLES

SAMPLES = FORMAT_SAMPLES / "gke-cloud-audit-logentries.jsonl"
SUBSCRIPTION = "projects/elastic-siem/subscriptions/gke-audit"
INSERT_IDS = [
    "87efd529-6349-45d2-b905-fc607e6c5d3b",
    "94170ac4-6e82-4345-98ad-3c780222d19d",
    "b10a904a-faa4-4e0d-9ec3-7bc6a180196a",
    "e973134d-b4d5-4e2f-92b8-82bba13fdb92",
    "03adfb9f-71a3-4f41-9701-29b5542f4d22",
    "k8s-nonmatch-0001",
]


def _messages() -> list[PubsubMessage]:
    lines = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]
    return [
        PubsubMessage(line, {"logging.googleapis.com/timestamp": "x"}, message_id=f"1000{i}")
        for i, line in enumerate(lines)
    ]


def test_message_becomes_a_record_sourced_by_subscription_and_message_id():
    record = message_to_record(_messages()[0], f"pubsub://{SUBSCRIPTION}")
    assert record.source.uri == f"pubsub://{SUBSCRIPTION}"
    assert record.source.message_id == "10000"
    (event,) = decode_record(record)
    assert event.event_id == "87efd529-6349-45d2-b905-fc607e6c5d3b"


def test_bad_message_is_dead_lettered_with_its_message_id():
    record = message_to_record(PubsubMessage(b"{not json", {}, message_id="42"), f"pubsub://{SUBSCRIPTION}")
    (outcome,) = decode_record(record)
    assert isinstance(outcome, DeadLetter)
    assert outcome.source.message_id == "42" and "not valid JSON" in outcome.reason


def test_malformed_subscription_name_fails_fast():
    with pytest.raises(ValueError, match="not a full name"):
        ReadPubSubRecords("gke-audit")


def _decode_batch(batch):
    for record in batch:
        for outcome in decode_record(record):
            yield (
                type(outcome).__name__,
                outcome.event_id if isinstance(outcome, AuditEvent) else outcome.reason,
            )


def test_streamed_messages_decode_to_the_six_gke_events():
    messages = _messages()
    stream = (
        test_stream.TestStream()
        .advance_watermark_to(0)
        .add_elements(messages[:4])
        .advance_processing_time(5)
        .add_elements(messages[4:])
        .advance_watermark_to(100)
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions(runner="BundleBasedDirectRunner")
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        outcomes = p | stream | MessagesToRecords(SUBSCRIPTION) | beam.FlatMap(_decode_batch)
        assert_that(outcomes, equal_to([("AuditEvent", insert_id) for insert_id in INSERT_IDS]))
