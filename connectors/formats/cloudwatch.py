"""CloudWatch Logs subscription payloads, as EKS control-plane logging delivers them (through Kinesis,
Firehose or Lambda): an envelope of `logEvents`, each message a native audit Event and each one record.
A message CloudWatch cut at its event size limit still yields the action it records, marked truncated."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from kubesigma.connectors.formats import DecodeContext, Format, Outcome, decode_record, register
from kubesigma.connectors.formats._json import refusal, unwritable
from kubesigma.connectors.formats._prefix import parse_prefix
from kubesigma.connectors.formats.kubernetes import audit_event, is_audit_event
from kubesigma.connectors.model import AuditEvent, Cloud, DeadLetter, RawRecord, Skipped, Source

# CloudWatch Logs caps an event at 256 KiB (message plus 26 bytes of overhead); EKS audit events that
# carry large request objects arrive cut there.
EVENT_SIZE_LIMIT = 256 * 1024
# Decompressed Kinesis payloads above this are refused (a subscription payload is at most ~1 MB compressed).
MAX_PAYLOAD = 16 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
MESSAGE_TYPES = frozenset({"DATA_MESSAGE", "CONTROL_MESSAGE"})
# Streams of an EKS log group that hold control-plane component logs (plain text), not audit Events.
NON_AUDIT_STREAM_PREFIXES = (
    "authenticator-",
    "kube-controller-manager-",
    "kube-scheduler-",
    "cloud-controller-manager-",
)


def is_subscription_envelope(value: Any) -> bool:
    return (
        type(value) is dict
        and value.get("messageType") in MESSAGE_TYPES
        and isinstance(value.get("logEvents", []), list)
        and "logGroup" in value
    )


def cluster_of_log_group(log_group: Any) -> str | None:
    """EKS writes control-plane logs to `/aws/eks/<cluster>/cluster`."""
    if not isinstance(log_group, str):
        return None
    parts = log_group.split("/")
    if (
        len(parts) == 5
        and parts[0] == ""
        and parts[1] == "aws"
        and parts[2] == "eks"
        and parts[4] == "cluster"
    ):
        return parts[3] or None
    return None


def _is_non_audit_stream(stream: Any) -> bool:
    if not isinstance(stream, str):
        return False
    if stream.startswith("kube-apiserver-") and not stream.startswith("kube-apiserver-audit"):
        return True
    return stream.startswith(NON_AUDIT_STREAM_PREFIXES)


def recover_truncated(message: str) -> dict[str, Any] | None:
    """The audit Event a cut message begins, as far as its complete members go; None if it is not one."""
    if not message.lstrip().startswith("{"):
        return None
    doc = parse_prefix(message)
    if (
        not isinstance(doc, dict)
        or unwritable(doc) is not None
        or doc.get("kind", "Event") != "Event"
        or not isinstance(doc.get("auditID"), str)
    ):
        return None
    return doc


def _log_event(
    item: Any,
    source: Source,
    envelope_cloud: Cloud,
    cluster: str | None,
    ctx: DecodeContext,
) -> Iterator[Outcome]:
    if not isinstance(item, dict) or not isinstance(item.get("message"), str):
        raw = orjson.dumps(item)
        yield DeadLetter("decode", "CloudWatch log event without a string message", source, raw)
        return
    message: str = item["message"]
    raw = message.encode("utf-8", "surrogatepass")
    context = {"cloud": envelope_cloud, "cluster": cluster}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        recovered = recover_truncated(message)
        if recovered is None:
            yield DeadLetter("decode", f"CloudWatch log event message is not valid JSON: {err}", source, raw)
        else:
            yield _truncated_event(recovered, item, source, raw, ctx, context)
        return
    refused = refusal(doc, raw)
    if refused is not None:
        yield DeadLetter("decode", f"CloudWatch log event message is {refused}", source, raw)
    elif is_audit_event(doc):
        yield audit_event(doc, source, len(raw), raw, ctx, **context)
    else:
        # Anything else a subscription may carry goes through the registry like a record of its own.
        yield from ctx.decode(doc, source, len(raw), raw)


def _truncated_event(
    doc: dict[str, Any],
    item: dict[str, Any],
    source: Source,
    raw: bytes,
    ctx: DecodeContext,
    context: dict[str, Any],
) -> Outcome:
    # Timestamps follow the request object in an Event, so a cut often loses them: CloudWatch's own
    # ingestion timestamp (ms) is the event time then, used for the time only, not added to the document.
    probe = doc
    if not any(
        isinstance(doc.get(k), str) for k in ("requestReceivedTimestamp", "stageTimestamp", "timestamp")
    ):
        millis = item.get("timestamp")
        stamp = _rfc3339_millis(millis) if isinstance(millis, int | float) else None
        if stamp is None:
            return DeadLetter(
                "decode",
                "cut audit Event with neither its timestamps nor a valid log event timestamp",
                source,
                raw,
            )
        probe = {**doc, "stageTimestamp": stamp}
    event = audit_event(probe, source, len(raw), raw, ctx, truncated=True, **context)
    if isinstance(event, AuditEvent) and probe is not doc:
        event = dataclasses.replace(event, views=((event.views[0][0], doc),))
    return event


def _rfc3339_millis(millis: float) -> str | None:
    """The time of epoch milliseconds, or None for what is no time (NaN, infinite, past year 9999)."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (OverflowError, ValueError, OSError):
        return None


def _decode_envelope(
    value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext, region: str | None = None
) -> Iterator[Outcome]:
    if value["messageType"] == "CONTROL_MESSAGE":
        # CloudWatch's reachability check when a subscription is created: one per envelope, no records.
        yield Skipped("CloudWatch Logs CONTROL_MESSAGE (subscription reachability check)", source)
        return
    owner = value.get("owner")
    # Backfill writes the region it read from; deliveries themselves do not carry one.
    region = region or (value.get("region") if isinstance(value.get("region"), str) else None)
    cloud = Cloud("aws", owner if isinstance(owner, str) and owner else None, region)
    cluster = cluster_of_log_group(value.get("logGroup")) or ctx.cluster
    stream = value.get("logStream")
    non_audit = _is_non_audit_stream(stream)
    for index, item in enumerate(value.get("logEvents") or ()):
        item_source = source.at_item(index)
        if non_audit:
            yield Skipped(
                f"CloudWatch log stream {stream} holds control-plane component logs, not audit Events",
                item_source,
            )
            continue
        yield from _log_event(item, item_source, cloud, cluster, ctx)


def gunzip_payload(data: bytes, limit: int = MAX_PAYLOAD) -> bytes:
    """Decompress a (possibly multi-member) gzip payload, refusing more than `limit` bytes out."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += inflater.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            raise ValueError(f"decompressed payload is over {limit} bytes")
        if not inflater.eof:
            raise ValueError("gzip payload is cut (no end of stream)")
        data = inflater.unused_data
        if data and not data.startswith(GZIP_MAGIC):
            raise ValueError("bytes after the gzip payload are not another gzip member")
    return bytes(out)


def kinesis_record(data: bytes, source: Source) -> RawRecord | DeadLetter:
    """A Kinesis record's data (gzip JSON, or that base64-encoded as Lambda hands it over) as a RawRecord."""
    payload = data
    if not payload.startswith(GZIP_MAGIC) and payload[:1] not in (b"{", b"["):
        try:
            payload = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return DeadLetter("decode", "Kinesis record data is neither gzip, JSON nor base64", source, data)
    if payload.startswith(GZIP_MAGIC):
        try:
            payload = gunzip_payload(payload)
        except (zlib.error, ValueError) as err:
            return DeadLetter(
                "decode", f"Kinesis record data is not a valid gzip payload: {err}", source, data
            )
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        return DeadLetter("decode", f"Kinesis record payload is not valid JSON: {err}", source, payload)
    return RawRecord(payload, source, value)


def decode_kinesis_data(
    data: bytes, source: Source, region: str | None = None, context: DecodeContext | None = None
) -> Iterator[Outcome]:
    """Outcomes of one Kinesis record carrying a CloudWatch Logs subscription payload; `region` is the
    stream's, which the payload itself does not name."""
    record = kinesis_record(data, source)
    if isinstance(record, DeadLetter):
        yield record
        return
    ctx = context or DecodeContext()
    if region and is_subscription_envelope(record.value):
        yield from _decode_envelope(record.value, source, len(record.data), record.data, ctx, region=region)
        return
    yield from decode_record(record, ctx)


register(Format("cloudwatch-subscription", is_subscription_envelope, _decode_envelope, priority=30))
