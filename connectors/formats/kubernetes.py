"""Kubernetes API audit Events (audit.k8s.io v1, v1beta1, or no apiVersion as in older captures) and
the EventList the webhook backend POSTs, whose items are records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from time import time as wallclock
from typing import Any

import orjson

from kubesigma.connectors.formats import DecodeContext, Format, Outcome, register
from kubesigma.connectors.formats._json import dumps_exact
from kubesigma.connectors.formats._time import parse_rfc3339
from kubesigma.connectors.model import KUBERNETES_AUDIT, AuditEvent, DeadLetter, Source

AUDIT_API_VERSIONS = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"})
# Event time: when the API server received the request; later stages keep that time.
TIME_FIELDS = ("requestReceivedTimestamp", "stageTimestamp", "timestamp")
_fromisoformat = datetime.fromisoformat
_build_event = AuditEvent.build  # type: ignore[attr-defined]


def _api_version_ok(value: dict[str, Any]) -> bool:
    api_version = value.get("apiVersion")
    return api_version is None or (api_version.__class__ is str and api_version in AUDIT_API_VERSIONS)


def is_audit_event(value: Any) -> bool:
    if value.__class__ is not dict or value.get("kind") != "Event" or "auditID" not in value:
        return False
    api_version = value.get("apiVersion")  # _api_version_ok, inline: this sniff runs on every record
    return api_version is None or (api_version.__class__ is str and api_version in AUDIT_API_VERSIONS)


# What every audit Event records whatever the audit level: the request, its verb and who made it.
_REQUEST_FIELDS = ("verb", "requestURI", "objectRef")


def is_partial_audit_event(value: Any) -> bool:
    """An audit Event without its auditID, or without `kind` at all, as hand-made records come (rule
    test corpora, replays): kind Event (or none) with an audit apiVersion (or none), a verb and the
    request's path or object. A core/v1 Event (apiVersion v1, involvedObject) is not one."""
    if type(value) is not dict or value.get("kind", "Event") != "Event" or not _api_version_ok(value):
        return False
    return isinstance(value.get("verb"), str) and any(
        isinstance(value.get(name), str | dict) for name in _REQUEST_FIELDS[1:]
    )


def content_id(doc: dict[str, Any], raw: bytes) -> str:
    """An id for a record that carries none: a hash of its content, the same whenever it is read."""
    data = raw or orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(data).hexdigest()[:32]


def is_event_list(value: Any) -> bool:
    return (
        type(value) is dict
        and value.get("kind") == "EventList"
        and isinstance(value.get("items"), list)
        and _api_version_ok(value)
    )


def audit_event(
    doc: dict[str, Any],
    source: Source,
    size: int,
    raw: bytes,
    ctx: DecodeContext,
    **context: Any,
) -> AuditEvent | DeadLetter:
    """Normalize one audit Event document; `context` adds cloud and cluster facts from an envelope."""
    if not context:
        return _normalize(doc, source, size, raw, ctx.cluster, None, False)
    event = _normalize(
        doc,
        source,
        size,
        raw,
        context.pop("cluster", None) or ctx.cluster,
        context.pop("cloud", None),
        context.pop("truncated", False),
    )
    return replace(event, **context) if context and isinstance(event, AuditEvent) else event


def _normalize(
    doc: dict[str, Any],
    source: Source,
    size: int,
    raw: bytes,
    cluster: str | None,
    cloud: Any,
    truncated: bool,
) -> AuditEvent | DeadLetter:
    # The hot path of decoding: class tests first (JSON gives exact types), isinstance for the rest.
    get = doc.get
    audit_id = get("auditID")
    if (audit_id.__class__ is not str and not isinstance(audit_id, str)) or not audit_id:
        if audit_id is not None and audit_id != "":
            return DeadLetter(
                "decode", f"Kubernetes audit event whose auditID is {type(audit_id).__name__}", source, raw
            )
        # kube-apiserver always writes one; hand-made records (rule test corpora, replays) may not.
        # The record stands for its own request, named by its content.
        audit_id = content_id(doc, raw)
    when = None
    ts = get("requestReceivedTimestamp")
    if ts.__class__ is str and len(ts) >= 19:
        try:  # parse_rfc3339's common case, inline: an aware timestamp from the C parser
            parsed = _fromisoformat(ts)
        except ValueError:
            when = parse_rfc3339(ts)
        else:
            when = parsed.timestamp() if parsed.tzinfo is not None else parse_rfc3339(ts)
    else:
        when = parse_rfc3339(ts)
    if when is None:
        for name in TIME_FIELDS[1:]:
            when = parse_rfc3339(get(name))
            if when is not None:
                break
        else:
            if any(get(name) is not None for name in TIME_FIELDS):
                return DeadLetter(
                    "decode",
                    f"Kubernetes audit event {audit_id} has no valid {'/'.join(TIME_FIELDS)}",
                    source,
                    raw,
                )
            # No time at all (a hand-made record): when it was read.
            when = wallclock()
    user = get("user")
    user_name = user.get("username") if user.__class__ is dict or isinstance(user, dict) else None
    if user_name is not None and user_name.__class__ is not str and not isinstance(user_name, str):
        user_name = None
    ips = get("sourceIPs")
    source_ip = ips[0] if (ips.__class__ is list or isinstance(ips, list)) and ips else None
    if source_ip is not None and source_ip.__class__ is not str and not isinstance(source_ip, str):
        source_ip = None
    agent = get("userAgent")
    if agent is not None and agent.__class__ is not str and not isinstance(agent, str):
        agent = None
    stage = get("stage")
    # Positional, without type.__call__: the constructor's overhead is most of this function's.
    return _build_event(
        ((KUBERNETES_AUDIT, doc),),
        when,
        audit_id,
        f"{audit_id}/{stage}" if stage.__class__ is str or isinstance(stage, str) else audit_id,
        source,
        size,
        cluster,
        cloud,
        truncated,
        user_name,
        source_ip,
        agent,
        audit_id,
    )


def _claim_event(
    value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext
) -> AuditEvent | DeadLetter | None:
    """`is_audit_event` and `_decode_event` in one call (a non-string apiVersion is not claimed)."""
    if value.__class__ is not dict or value.get("kind") != "Event" or "auditID" not in value:
        return None
    api_version = value.get("apiVersion")
    if api_version is not None and (
        api_version.__class__ is not str or api_version not in AUDIT_API_VERSIONS
    ):
        return None
    return _normalize(value, source, size, raw, ctx.cluster, None, False)


def _decode_event(value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext) -> Iterator[Outcome]:
    return iter((_normalize(value, source, size, raw, ctx.cluster, None, False),))  # no generator: hot path


def _decode_event_list(
    value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext
) -> Iterator[Outcome]:
    # Each item is a record of its own: sized and sourced by its position in the list.
    for index, item in enumerate(value["items"]):
        item_source = source.at_item(index)
        item_raw = dumps_exact(item)
        if is_audit_event(item) or is_partial_audit_event(item):
            yield audit_event(item, item_source, len(item_raw), item_raw, ctx)
        else:
            yield from ctx.decode(item, item_source, len(item_raw), item_raw)


# Native audit Events are by far the most common record: they are sniffed first (no envelope has kind Event).
register(Format("kubernetes-audit-event", is_audit_event, _decode_event, priority=10, claim=_claim_event))
register(Format("kubernetes-audit-eventlist", is_event_list, _decode_event_list, priority=10))
# Events missing what kube-apiserver always writes are sniffed last: every envelope is tried before.
register(Format("kubernetes-audit-event-partial", is_partial_audit_event, _decode_event, priority=90))
