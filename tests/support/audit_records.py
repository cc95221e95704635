"""The one audit-record builder: Kubernetes audit Events (audit.k8s.io/v1) as kube-apiserver writes them,
and the same decoded by the real decoder into the pipeline's AuditEvent.

`audit_event` writes one record, members in kube-apiserver's order (its Go struct's), so a record cut
short (CloudWatch's 256 KiB limit, a reader's size limit) loses what the real one would lose. Its
defaults are one user reading a Secret with kubectl at T0; a test names what differs. `routine_read` is
a workload's configmap read no rule cares about; `secret_reads` a run of decoded secret reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, RawRecord, Source

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC).timestamp()  # a 5-minute (and hour) boundary
KUBECTL = "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8"


def rfc3339(t: float) -> str:
    """A time as kube-apiserver writes it: UTC, microseconds, `Z`."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_event(
    n: int = 0,
    *,
    at: float = T0,
    took: float = 0.002,
    verb: str = "get",
    resource: str = "secrets",
    namespace: str | None = "default",
    name: str | None = None,
    subresource: str | None = None,
    uri: str | None = None,
    user: str = "mallory",
    groups: Sequence[str] = ("system:authenticated",),
    ip: str = "203.0.113.66",
    user_agent: str = KUBECTL,
    decision: str = "allow",
    code: int = 200,
    level: str | None = None,
    request_object: dict[str, Any] | None = None,
    response_object: dict[str, Any] | None = None,
    **members: Any,
) -> dict[str, Any]:
    """Audit Event number `n` (its auditID is derived from n): a request received at `at` (epoch
    seconds) and answered `took` seconds later with `code`, the authorizer's `decision` in the
    annotations. `uri` defaults to the path of the object. `level` defaults to what the record holds:
    RequestResponse with a request object, Metadata without.

    `members` are top-level members written as given, replacing the built ones in place or appended
    after them (`stage="ResponseStarted"`, `auditID=...`, `sourceIPs=[...]`, or a `requestObject`
    that a Metadata-level record should not carry but a test needs)."""
    ref: dict[str, Any] = {"resource": resource}
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    ref["apiVersion"] = "v1"
    if subresource:
        ref["subresource"] = subresource
    path = uri or f"/api/v1/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level or ("RequestResponse" if request_object is not None else "Metadata"),
        "auditID": str(uuid.UUID(int=n + 1)),
        "stage": "ResponseComplete",
        "requestURI": path,
        "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": [ip],
        "userAgent": user_agent,
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
    }
    if request_object is not None:
        event["requestObject"] = request_object
    if response_object is not None:
        event["responseObject"] = response_object
    event["requestReceivedTimestamp"] = rfc3339(at)
    event["stageTimestamp"] = rfc3339(at + took)
    event["annotations"] = {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": ""}
    event.update(members)
    return event


def routine_read(n: int, **changes: Any) -> dict[str, Any]:
    """A workload's service account reading its own configmap `cm-<n>`: traffic no rule alerts on."""
    defaults: dict[str, Any] = {
        "resource": "configmaps",
        "name": f"cm-{n}",
        "user": "system:serviceaccount:default:app",
        "groups": ("system:serviceaccounts",),
        "ip": "10.0.0.7",
        "user_agent": "app/1.0",
    }
    return audit_event(n, **{**defaults, **changes})


def to_event(doc: dict[str, Any], line: int = 1) -> AuditEvent:
    """The record as the pipeline sees it: its JSON line decoded by the real decoder."""
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
            audit_event(first_n + i, at=start + i * step, user=user, name=f"secret-{i if distinct else 0}"),
            first_n + i,
        )
        for i in range(count)
    ]
