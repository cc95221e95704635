"""Containers of records that tools write around them: a JSON array of records (`gcloud logging read
--format=json`, `aws logs filter-log-events`, exported test corpora) and a Pub/Sub message as a push
subscription POSTs it or `gcloud pubsub subscriptions pull --format=json` prints it (the record
base64-encoded in `data`). Each item is a record of its own, sourced by its position."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any

import orjson

from kubesigma.connectors.formats import DecodeContext, Format, Outcome, register
from kubesigma.connectors.formats._json import dumps_exact
from kubesigma.connectors.model import DeadLetter, Source


def is_json_array(value: Any) -> bool:
    return type(value) is list


def _decode_array(value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext) -> Iterator[Outcome]:
    for index, item in enumerate(value):
        item_raw = dumps_exact(item)
        yield from ctx.decode(item, source.at_item(index), len(item_raw), item_raw)


def _message(value: Any) -> dict[str, Any] | None:
    """The Pub/Sub message of a push request, a pulled message, or a bare message."""
    if type(value) is not dict:
        return None
    inner = value.get("message")
    message = inner if type(inner) is dict else value
    data = message.get("data")
    if isinstance(data, str) and ("messageId" in message or "message_id" in message or inner is not None):
        return message
    return None


def is_pubsub_message(value: Any) -> bool:
    return _message(value) is not None


def _decode_message(
    value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext
) -> Iterator[Outcome]:
    message = _message(value)
    assert message is not None
    message_id = message.get("messageId") or message.get("message_id")
    where = Source(
        source.uri, source.line, source.offset, str(message_id) if message_id else None, source.item
    )
    try:
        data = base64.b64decode(message["data"], validate=True)
        record = orjson.loads(data)
    except (binascii.Error, ValueError) as err:
        yield DeadLetter("decode", f"Pub/Sub message whose data is not base64 JSON: {err}", where, raw)
        return
    yield from ctx.decode(record, where, len(data), data)


# Before the record formats' sniffs: neither container is a record of any format.
register(Format("json-array", is_json_array, _decode_array, priority=20))
register(Format("pubsub-message", is_pubsub_message, _decode_message, priority=25))
