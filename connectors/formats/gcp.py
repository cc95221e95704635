"""GCP Cloud Audit Logs around a cluster (container.googleapis.com: clusters and node pools created,
updated, deleted; credentials fetched), and any other AuditLog LogEntry a log sink routes here, as
logsource gcp/gcp.audit. GKE's in-cluster `k8s.io` entries are decoded by `gke` first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubesigma.connectors.formats import DecodeContext, Format, Outcome, register
from kubesigma.connectors.formats._time import parse_rfc3339
from kubesigma.connectors.formats.gke import gcp_cloud
from kubesigma.connectors.model import GCP_AUDIT, AuditEvent, DeadLetter, Source

AUDIT_LOG_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"


def is_gcp_audit_entry(value: Any) -> bool:
    if type(value) is not dict:
        return False
    payload = value.get("protoPayload")
    return type(payload) is dict and (
        payload.get("@type") == AUDIT_LOG_TYPE or payload.get("serviceName") == "container.googleapis.com"
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _cluster(entry: dict[str, Any], labels: dict[str, Any], ctx: DecodeContext) -> str | None:
    name = _text(labels.get("cluster_name"))
    if name:
        return name
    # Cluster-level calls name it in the resource path: projects/p/locations/l/clusters/<name>[/...]
    resource_name = _text(entry["protoPayload"].get("resourceName")) or ""
    parts = resource_name.split("/")
    if "clusters" in parts:
        index = parts.index("clusters")
        if index + 1 < len(parts):
            return parts[index + 1]
    return ctx.cluster


def _decode(entry: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext) -> Iterator[Outcome]:
    insert_id = _text(entry.get("insertId"))
    if insert_id is None:
        yield DeadLetter("decode", "GCP audit LogEntry without insertId", source, raw)
        return
    when = parse_rfc3339(entry.get("timestamp")) or parse_rfc3339(entry.get("receiveTimestamp"))
    if when is None:
        yield DeadLetter("decode", f"GCP audit LogEntry {insert_id} has no valid timestamp", source, raw)
        return
    payload = entry["protoPayload"]
    cloud, labels = gcp_cloud(entry)
    auth = payload.get("authenticationInfo")
    metadata = payload.get("requestMetadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    yield AuditEvent(
        views=((GCP_AUDIT, entry),),
        time=when,
        event_id=insert_id,
        identity=f"{entry.get('logName', '')}/{insert_id}",
        source=source,
        size=size,
        cluster=_cluster(entry, labels, ctx),
        cloud=cloud,
        user_name=_text(auth.get("principalEmail")) if isinstance(auth, dict) else None,
        source_ip=_text(metadata.get("callerIp")) or _text(metadata.get("callerIP")),
        user_agent=_text(metadata.get("callerSuppliedUserAgent")),
        request=_operation_id(entry) or insert_id,
    )


def _operation_id(entry: dict[str, Any]) -> str | None:
    """A long-running operation's id: its start and its end are entries of one request."""
    operation = entry.get("operation")
    return _text(operation.get("id")) if isinstance(operation, dict) else None


register(Format("gcp-audit-logentry", is_gcp_audit_entry, _decode, priority=45))
