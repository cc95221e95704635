"""GKE audit logs streamed through a Cloud Logging sink into Pub/Sub: each message's data is one
LogEntry as JSON. Messages become `RawRecord`s sourced by subscription and message id."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from kubesigma.connectors.event import RawRecord, Source

MAX_BATCH = 500


def subscription_uri(subscription: str) -> str:
    """`pubsub://projects/<p>/subscriptions/<s>`: where a record came from, for dead letters and alerts."""
    if not subscription.startswith("projects/") or "/subscriptions/" not in subscription:
        raise ValueError(
            f"Pub/Sub subscription {subscription!r} is not a full name (projects/<project>/subscriptions/<name>)"
        )
    return f"pubsub://{subscription}"


def message_to_record(message: Any, uri: str) -> RawRecord:
    """One Pub/Sub message (a `PubsubMessage`, or bytes when read without attributes) as a RawRecord;
    the JSON is parsed later by the decoder, so a bad message dead-letters with its message id."""
    if isinstance(message, bytes | bytearray):
        return RawRecord(bytes(message), Source(uri))
    message_id = getattr(message, "message_id", None)
    return RawRecord(bytes(message.data or b""), Source(uri, message_id=message_id or None))


class MessagesToRecords(beam.PTransform):
    """Pub/Sub messages → batches of RawRecords, the shape `DecodeAudit` takes."""

    def __init__(self, subscription: str, max_batch: int = MAX_BATCH) -> None:
        super().__init__()
        self.uri = subscription_uri(subscription)
        self.max_batch = max_batch

    def expand(self, messages: pvalue.PCollection) -> pvalue.PCollection:
        uri = self.uri
        return (
            messages
            | "ToRecord" >> beam.Map(message_to_record, uri)
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.max_batch)
        )


class ReadPubSubRecords(beam.PTransform):
    """Read a subscription fed by a log sink (credentials from Application Default Credentials).

    Pub/Sub delivers at least once; redeliveries decode to the same event identity, so the idempotent
    alert ids keep sinks free of duplicates. Event time comes from the LogEntry, not the publish time.
    """

    def __init__(self, subscription: str, max_batch: int = MAX_BATCH) -> None:
        super().__init__()
        subscription_uri(subscription)  # fail fast on a malformed name
        self.subscription = subscription
        self.max_batch = max_batch

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        return (
            pbegin
            | "ReadPubSub" >> beam.io.ReadFromPubSub(subscription=self.subscription, with_attributes=True)
            | "Records" >> MessagesToRecords(self.subscription, self.max_batch)
        )
