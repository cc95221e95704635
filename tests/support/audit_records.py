"""Kubernetes audit Events as kube-apiserver writes them, decoded by the real decoder, for streaming tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, RawRecord, Source

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC).timestamp()  # a 5-minute (and hour) boundary


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_doc(
    t: float,
    n: int,
    *,
    verb: str = "get",
    resource: str = "secrets",
    name: str | None = None,
    namespace: str | None = "default",
    subresource: str | None = None,
    user: str = "mallory",
    groups: tuple[str, ...] = ("system:authenticated",),
    ip: str = "203.0.113.66",
    decision: str = "allow",
    code: int = 200,
    request_object: dict[str, Any] | None = None,
    uri: str | None = None,
) -> dict[str, Any]:
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    if subresource:
        ref["subresource"] = subresource
    path = uri or f"/api/v1/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")
    doc: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse" if request_object else "Metadata",
        "auditID": str(uuid.UUID(int=n + 1)),
        "stage": "ResponseComplete",
        "requestURI": path,
        "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": [ip],
        "userAgent": "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": rfc3339(t),
        "stageTimestamp": rfc3339(t + 0.002),
        "annotations": {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": ""},
    }
    if request_object is not None:
        doc["requestObject"] = request_object
    return doc


def to_event(doc: dict[str, Any], line: int = 1) -> AuditEvent:
    raw = orjson.dumps(doc)
    (event,) = decode_record(RawRecord(raw, Source("test://audit.log", line=line)))
    assert isinstance(event, AuditEvent), event
    return event


def secret_reads(
    start: float,
    count: int,
    *,
    step: float = 1.0,
    user: str = "mallory",
    first_n: int = 0,
    distinct: bool = True,
) -> list[AuditEvent]:
    """`count` secret gets by `user`, `step` seconds apart, of distinct secrets (or the same one)."""
    return [
        to_event(
            audit_doc(start + i * step, first_n + i, user=user, name=f"secret-{i if distinct else 0}"),
            first_n + i,
        )
        for i in range(count)
    ]
