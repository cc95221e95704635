"""How kube-apiserver's audit backend records a request: the audit.k8s.io/v1 Event (or the
ResponseStarted and ResponseComplete pair of a long-running call) at the Policy level asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubesigma.connectors.simulated_cluster.cluster import Cluster
from kubesigma.connectors.simulated_cluster.identities import Identity


def timestamp(t: float) -> str:
    """An audit Event's timestamp (RFC 3339, microseconds, UTC) of a POSIX time."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_CODE_REASON = {201: "Created", 101: "Switching Protocols", 403: "Forbidden", 404: "NotFound"}


class AuditRecorder:
    """Builds audit Events; a scenario asks it for requests and gets a list of stage records."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def request(
        self,
        t: float,
        who: Identity,
        verb: str,
        uri: str,
        ref: dict[str, Any] | None,
        *,
        code: int = 200,
        latency: float | None = None,
        level: str = "Metadata",
        request_object: dict[str, Any] | None = None,
        response_object: dict[str, Any] | None = None,
        decision: str = "allow",
        reason: str | None = None,
        started: bool = False,
        annotations: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """One API request: its ResponseComplete record, after a ResponseStarted one for long-running calls."""
        rng = self.cluster.rng
        if latency is None:
            latency = rng.uniform(0.0008, 0.012)
        audit_id = self.cluster.uuid()
        notes: dict[str, str] = {"authorization.k8s.io/decision": decision}
        notes["authorization.k8s.io/reason"] = who.reason if reason is None else reason
        if annotations:
            notes.update(annotations)
        base: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": audit_id,
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": who.user(),
            "sourceIPs": [who.source_ip],
            "userAgent": who.user_agent,
        }
        if ref is not None:
            base["objectRef"] = ref
        status: dict[str, Any] = {"metadata": {}, "code": code}
        if code >= 400:
            status.update(status="Failure", reason=_CODE_REASON.get(code, "Unknown"))
            if decision == "forbid":
                status["message"] = f'{verb} is forbidden: User "{who.username}" cannot {verb} this resource'
        base["responseStatus"] = status
        if request_object is not None and level in ("Request", "RequestResponse"):
            base["requestObject"] = request_object
        if response_object is not None and level == "RequestResponse" and code < 400:
            base["responseObject"] = response_object
        base["requestReceivedTimestamp"] = timestamp(t)
        out = []
        if started:
            first = dict(base)
            first["stage"] = "ResponseStarted"
            first["responseStatus"] = {"metadata": {}, "code": 101 if verb == "create" else 200}
            first.pop("responseObject", None)
            first["stageTimestamp"] = timestamp(t + min(latency, 0.05) / 2)
            first["annotations"] = notes
            out.append(first)
        base["stageTimestamp"] = timestamp(t + latency)
        base["annotations"] = notes
        out.append(base)
        return out


def object_ref(
    resource: str, namespace: str | None = None, name: str | None = None, **extra: str
) -> dict[str, Any]:
    """An audit Event's `objectRef` (apiVersion v1 unless `extra` says otherwise)."""
    ref: dict[str, Any] = {"resource": resource}
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    ref.update(extra)
    ref.setdefault("apiVersion", "v1")
    return ref


def api_path(resource: str, namespace: str | None = None, name: str | None = None, group: str = "") -> str:
    """The request path of a resource (`group`: "apps/v1" and the like; the core group when empty)."""
    prefix = f"/apis/{group}" if group else "/api/v1"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{ns}/{resource}" + (f"/{name}" if name else "")
