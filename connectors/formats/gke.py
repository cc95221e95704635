"""GKE audit logs as Cloud Logging delivers them: a `LogEntry` whose `protoPayload` is an AuditLog of
serviceName `k8s.io` on a `k8s_cluster` resource. One entry is one event seen two ways: as the
Kubernetes audit Event it records (synthesized, so Kubernetes rules match) and as the LogEntry itself."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from kubesigma.connectors.formats import DecodeContext, Format, Outcome, register
from kubesigma.connectors.formats.kubernetes import audit_event, content_id
from kubesigma.connectors.model import GCP_AUDIT, Cloud, DeadLetter, Source

# google.rpc.Code → the HTTP status the API server answered with (the mapping of google/rpc/code.proto).
GRPC_TO_HTTP = {
    0: 200,
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}
# The `reason` a Kubernetes Status carries for these codes, so denied requests read as they do natively.
HTTP_REASON = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_VERSION = re.compile(r"v\d+((alpha|beta)\d+)?")
_ZONE = re.compile(r"([a-z]+-[a-z]+\d+)-[a-z]")
# Namespace subresources of the namespace object itself (k8s RequestInfo: /namespaces/<ns>/status).
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
# First segments of non-resource paths that look like <group>/<version>/...: /openid/v1/jwks.
_NON_RESOURCE_ROOTS = frozenset({"api", "apis", "openid", ".well-known", "openapi", "logs", "metrics"})
# Subresources of upgraded connections: a success is 101, as kube-apiserver writes it.
_CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})


def is_gke_audit_entry(value: Any) -> bool:
    """The service name says it: Cloud Logging writes `resource.type: k8s_cluster` beside it, but
    copies of entries (exports, test corpora) do not always keep the resource."""
    if type(value) is not dict:
        return False
    payload = value.get("protoPayload")
    return type(payload) is dict and payload.get("serviceName") == "k8s.io"


DECISION = "authorization.k8s.io/decision"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def region_of(location: str | None) -> str | None:
    """GKE locations are regions (`us-central1`) or zones (`us-central1-a`): ECS cloud.region is the region."""
    if not location:
        return None
    zone = _ZONE.fullmatch(location)
    return zone.group(1) if zone else location


def gcp_cloud(entry: dict[str, Any]) -> tuple[Cloud, dict[str, Any]]:
    """`cloud.*` of a LogEntry from its monitored resource labels (project from logName as a fallback)."""
    resource = entry.get("resource")
    labels = resource.get("labels") if isinstance(resource, dict) else None
    labels = labels if isinstance(labels, dict) else {}
    project = labels.get("project_id")
    if not isinstance(project, str) or not project:
        log_name = entry.get("logName")
        project = None
        if isinstance(log_name, str) and log_name.startswith("projects/"):
            project = log_name.split("/", 2)[1] or None
    location = labels.get("location")
    return Cloud("gcp", project, region_of(location if isinstance(location, str) else None)), labels


def _object_ref(resource_name: str) -> tuple[dict[str, Any] | None, str]:
    """objectRef and requestURI of a GKE resourceName (`<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<sub>]]`,
    group `core` for the legacy API); non-resource paths (`readyz`, `api/v1`) give no objectRef."""
    parts = [p for p in resource_name.split("/") if p]
    if len(parts) < 3 or not _VERSION.fullmatch(parts[1]) or parts[0] in _NON_RESOURCE_ROOTS:
        return None, "/" + resource_name.lstrip("/")
    group, version, rest = parts[0], parts[1], parts[2:]
    api_group = "" if group == "core" else group
    prefix = f"/api/{version}" if group == "core" else f"/apis/{group}/{version}"
    ref: dict[str, Any] = {}
    if rest[0] == "namespaces" and len(rest) >= 2:
        ref["namespace"] = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    ref["resource"] = rest[0]
    if len(rest) > 1:
        ref["name"] = rest[1]
    if len(rest) > 2:
        ref["subresource"] = rest[2]
    ref["apiGroup"] = api_group
    ref["apiVersion"] = version
    return ref, f"{prefix}/{'/'.join(parts[2:])}"


def _verb(method_name: str) -> str:
    # io.k8s.<group>.<version>.<resource>[.<subresource>].<verb>, or io.k8s.<verb> for non-resource paths
    return method_name.rsplit(".", 1)[-1]


def _without_type(obj: Any) -> Any:
    # AuditLog Structs carry a protobuf `@type`; Kubernetes objects in a native Event do not.
    if isinstance(obj, dict) and "@type" in obj:
        return {k: v for k, v in obj.items() if k != "@type"}
    return obj


def _granted(payload: dict[str, Any]) -> bool | None:
    """The authorizer's verdict from `authorizationInfo[].granted`: False when any check was refused."""
    checks = payload.get("authorizationInfo")
    verdicts = [c.get("granted") for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []
    verdicts = [v for v in verdicts if isinstance(v, bool)]
    return all(verdicts) if verdicts else None


def _failed_response(payload: dict[str, Any]) -> dict[str, Any] | None:
    """A Kubernetes Status of failure returned as the response: where GKE records refusals admission
    made (Binary Authorization, policy webhooks) when `status` says nothing."""
    response = payload.get("response")
    if not isinstance(response, dict) or response.get("status") != "Failure":
        return None
    return response


def _response_status(payload: dict[str, Any], connect: bool) -> dict[str, Any]:
    """The response status the API server answered with, from what GKE kept of it: `status` (a
    google.rpc.Status: `{}` is success), else a failure Status in `response`, else a refusal in
    `authorizationInfo`."""
    status = payload.get("status")
    code = status.get("code", 0) if isinstance(status, dict) else 0
    if not isinstance(code, int) or isinstance(code, bool):
        code = 2
    message = status.get("message") if isinstance(status, dict) else None
    http = GRPC_TO_HTTP.get(code, 500)
    failed = _failed_response(payload)
    if http < 400 and failed is not None:
        answered = failed.get("code")
        http = answered if isinstance(answered, int) and answered >= 400 else 403
        message = failed.get("message")
    elif http < 400 and _granted(payload) is False:
        http = 403
    elif http < 400 and connect:
        http = 101  # exec, attach, port-forward: the connection was upgraded
    out: dict[str, Any] = {"metadata": {}, "code": http}
    if http >= 400:
        out["status"] = "Failure"
        reason = failed.get("reason") if failed is not None else None
        if isinstance(reason, str) and reason:
            out["reason"] = reason
        elif http in HTTP_REASON:
            out["reason"] = HTTP_REASON[http]
        if isinstance(message, str) and message:
            out["message"] = message
    return out


def synthesize_audit_event(entry: dict[str, Any]) -> dict[str, Any] | str:
    """The Kubernetes audit Event a GKE LogEntry records, or why it cannot be one."""
    payload = entry["protoPayload"]
    method = payload.get("methodName")
    if not isinstance(method, str) or not method:
        return "GKE audit LogEntry without protoPayload.methodName"
    timestamp = entry.get("timestamp")
    if not isinstance(timestamp, str):
        timestamp = entry.get("receiveTimestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        return "GKE audit LogEntry whose timestamp is not text"
    operation = entry.get("operation")
    operation = operation if isinstance(operation, dict) else {}
    audit_id = operation.get("id")
    if not isinstance(audit_id, str) or not audit_id:
        audit_id = entry.get("insertId")
    if not isinstance(audit_id, str) or not audit_id:
        audit_id = content_id(entry, b"")  # a hand-made entry: it stands for its own request
    # A long-running request (exec, watch) is two entries of one operation: its start and its end.
    started = operation.get("first") is True and operation.get("last") is not True
    doc: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse" if "request" in payload or "response" in payload else "Metadata",
        "auditID": audit_id,
        "stage": "ResponseStarted" if started else "ResponseComplete",
    }
    resource_name = payload.get("resourceName")
    ref, uri = (
        _object_ref(resource_name) if isinstance(resource_name, str) and resource_name else (None, None)
    )
    if uri is not None:
        doc["requestURI"] = uri
    doc["verb"] = _verb(method)
    auth = payload.get("authenticationInfo")
    if isinstance(auth, dict):
        principal = _text(auth.get("principalEmail")) or _text(auth.get("principalSubject"))
        selector = _text(auth.get("authoritySelector"))
        if principal is not None:
            doc["user"] = {"username": principal}
            # An impersonating client: GKE names the impersonator and, here, whom it acts as.
            if selector is not None and selector != principal:
                doc["impersonatedUser"] = {"username": selector}
        elif selector is not None:
            doc["user"] = {"username": selector}
    metadata = payload.get("requestMetadata")
    if isinstance(metadata, dict):
        caller = metadata.get("callerIp") or metadata.get("callerIP")
        if isinstance(caller, str) and caller:
            doc["sourceIPs"] = [caller]
        agent = metadata.get("callerSuppliedUserAgent")
        if isinstance(agent, str):
            doc["userAgent"] = agent
    if ref is not None:
        doc["objectRef"] = ref
    connect = ref is not None and ref.get("subresource") in _CONNECT_SUBRESOURCES
    doc["responseStatus"] = _response_status(payload, connect)
    if "request" in payload:
        doc["requestObject"] = _without_type(payload["request"])
    if "response" in payload:
        doc["responseObject"] = _without_type(payload["response"])
    if timestamp is not None:
        doc["requestReceivedTimestamp"] = timestamp
        doc["stageTimestamp"] = timestamp
    labels = entry.get("labels")
    # GKE writes the audit annotations (authorization decision and reason, deprecation, PSA) and the
    # command of an exec (`command.gke.io/command`) as labels.
    annotations = dict(labels) if isinstance(labels, dict) else {}
    if DECISION not in annotations:
        granted = _granted(payload)
        if granted is not None:
            annotations[DECISION] = "allow" if granted else "forbid"
    if annotations:
        doc["annotations"] = annotations
    return doc


def _decode(entry: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext) -> Iterator[Outcome]:
    doc = synthesize_audit_event(entry)
    if isinstance(doc, str):
        yield DeadLetter("decode", doc, source, raw)
        return
    cloud, labels = gcp_cloud(entry)
    cluster = labels.get("cluster_name")
    event = audit_event(
        doc, source, size, raw, ctx, cloud=cloud, cluster=cluster if isinstance(cluster, str) else None
    )
    if isinstance(event, DeadLetter):
        yield event
        return
    insert_id = entry.get("insertId")
    event_id = insert_id if isinstance(insert_id, str) and insert_id else event.event_id
    yield dataclasses.replace(
        event,
        views=(*event.views, (GCP_AUDIT, entry)),
        event_id=event_id,
        # Cloud Logging deduplicates on insertId within a log: the same key names one delivered record.
        identity=f"{entry.get('logName', '')}/{event_id}",
    )


register(Format("gke-audit-logentry", is_gke_audit_entry, _decode, priority=40))
