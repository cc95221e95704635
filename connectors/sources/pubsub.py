"""GKE audit logs streamed through a Cloud Logging sink into Pub/Sub: each message's data is one
LogEntry as JSON. Messages become `RawRecord`s sourced by subscription and message id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.gcp.pubsub import ReadFromPubSub, parse_subscription
from apache_beam.transforms.window import GlobalWindow, TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from kubesigma.connectors.model import RawRecord, Source
from kubesigma.connectors.sources import RECORD_BATCH, RecordBatch


def subscription_uri(subscription: str) -> str:
    """`pubsub://projects/<p>/subscriptions/<s>`: where a record came from, for dead letters and alerts."""
    if not subscription.startswith("projects/") or "/subscriptions/" not in subscription:
        raise ValueError(
            f"Pub/Sub subscription {subscription!r} is not a full name (projects/<project>/subscriptions/<name>)"
        )
    try:
        parse_subscription(subscription)  # Beam's own rules (project id 6-63 characters, ...)
    except ValueError as err:
        raise ValueError(f"Pub/Sub subscription {subscription!r}: {err}") from err
    return f"pubsub://{subscription}"


def message_to_record(message: Any, uri: str) -> RawRecord:
    """One Pub/Sub message (a `PubsubMessage`, or bytes when read without attributes) as a RawRecord;
    the JSON is parsed later by the decoder, so a bad message dead-letters with its message id."""
    if isinstance(message, bytes | bytearray):
        return RawRecord(bytes(message), Source(uri))
    message_id = getattr(message, "message_id", None)
    return RawRecord(bytes(message.data or b""), Source(uri, message_id=message_id or None))


class _BatchRecords(beam.DoFn):
    """Records → lists of up to `max_batch` within a bundle, each stamped with its earliest record's
    timestamp (BatchElements stamps batches in the global window at the start of time, which made
    anything not restamped downstream, dead letters included, late for every event-time window)."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch

    def start_bundle(self) -> None:
        self.batch = RecordBatch()
        self.earliest: Timestamp | None = None

    def process(self, record: RawRecord, ts=beam.DoFn.TimestampParam) -> Iterator[TimestampedValue]:
        self.batch.append(record)
        if self.earliest is None or ts < self.earliest:
            self.earliest = ts
        if len(self.batch) >= self.max_batch:
            yield TimestampedValue(self.batch, self.earliest)
            self.start_bundle()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self.batch and self.earliest is not None:
            yield WindowedValue(self.batch, self.earliest, (GlobalWindow(),))
        self.start_bundle()


class MessagesToRecords(beam.PTransform):
    """Pub/Sub messages → batches of RawRecords, the shape `DecodeAudit` takes."""

    def __init__(self, subscription: str, max_batch: int = RECORD_BATCH) -> None:
        super().__init__()
        self.uri = subscription_uri(subscription)
        self.max_batch = max_batch

    def expand(self, messages: pvalue.PCollection) -> pvalue.PCollection:
        uri = self.uri
        return (
            messages
            | "ToRecord" >> beam.Map(message_to_record, uri)
            | "Batch" >> beam.ParDo(_BatchRecords(self.max_batch)).with_output_types(RecordBatch)
        )


# Cloud Logging sinks stamp each message with its LogEntry's timestamp in this attribute.
LOG_SINK_TIMESTAMP = "logging.googleapis.com/timestamp"


class ReadPubSubRecords(beam.PTransform):
    """Read a subscription fed by a log sink or any producer of JSON audit records (credentials from
    Application Default Credentials; `PUBSUB_EMULATOR_HOST` points the client at an emulator).

    Pub/Sub delivers at least once; redeliveries decode to the same event identity, so the idempotent
    alert ids keep sinks free of duplicates. Detection and correlation use the event time decoded from
    each record; `timestamp_attribute` (e.g. `logging.googleapis.com/timestamp` for a log sink) makes
    the source's element timestamps and watermark event time too, instead of the publish time.
    """

    def __init__(
        self, subscription: str, max_batch: int = RECORD_BATCH, timestamp_attribute: str | None = None
    ) -> None:
        super().__init__()
        subscription_uri(subscription)  # fail fast on a malformed name
        self.subscription = subscription
        self.max_batch = max_batch
        self.timestamp_attribute = timestamp_attribute

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        read = ReadFromPubSub(
            subscription=self.subscription, with_attributes=True, timestamp_attribute=self.timestamp_attribute
        )
        return (
            pbegin | "ReadPubSub" >> read | "Records" >> MessagesToRecords(self.subscription, self.max_batch)
        )
