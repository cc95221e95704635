"""How kube-apiserver logs a request under an audit Policy, for the busy day: the Policy decides whether
and at which level; long-running requests get ResponseStarted and ResponseComplete with one auditID;
refusals carry the status, message and Status body the API server writes; failed authentication is
logged once, without a user; impersonation names the impersonated user."""

from __future__ import annotations

from typing import Any, Literal

from kubesigma.connectors.model.logsources import is_long_running
from kubesigma.connectors.simulated_cluster.audit import AuditRecorder, api_path, timestamp
from kubesigma.connectors.simulated_cluster.audit_policy import AuditPolicy
from kubesigma.connectors.simulated_cluster.cluster import Cluster
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.traffic import Episode

# Connection upgrades answer 101 Switching Protocols (SPDY or WebSocket).
UPGRADES = frozenset({"attach", "exec", "portforward"})
Denial = Literal["rbac", "admission", "unauthenticated", "notfound", "conflict"]
_DENIAL_CODE = {"rbac": 403, "admission": 403, "unauthenticated": 401, "notfound": 404, "conflict": 409}
_REASON = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict"}


def forbidden_message(
    user: str,
    verb: str,
    resource: str | None,
    ns: str | None,
    name: str | None,
    group: str,
    sub: str | None,
    path: str,
) -> str:
    """The message of an RBAC refusal, worded as kube-apiserver words it."""
    if resource is None:
        return f'forbidden: User "{user}" cannot {verb} path "{path}"'
    what = f"{resource}.{group}" if group else resource
    subject = f'{what} "{name}"' if name else what
    full = f"{resource}/{sub}" if sub else resource
    scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    return f'{subject} is forbidden: User "{user}" cannot {verb} resource "{full}" in API group "{group}" {scope}'


class ApiServer(AuditRecorder):
    """An API server logging under `policy`; `call` records one request as that server would."""

    def __init__(self, cluster: Cluster, policy: AuditPolicy) -> None:
        super().__init__(cluster)
        self.policy = policy

    def call(
        self,
        t: float,
        who: Identity,
        verb: str,
        resource: str | None,
        ns: str | None = None,
        name: str | None = None,
        *,
        group: str = "",
        version: str = "v1",
        sub: str | None = None,
        query: str = "",
        path: str | None = None,
        code: int | None = None,
        body: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        latency: float | None = None,
        impersonate: Identity | None = None,
        deny: Denial | None = None,
        message: str | None = None,
        reason: str | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Episode:
        """One request's records ([] when the Policy does not log it). `latency` of a long-running request
        is how long it stays open (a watch's timeout, an exec session)."""
        actor = impersonate or who
        if path is None:
            # A create posts to the collection; the audit Event still names the object it creates.
            target = None if verb == "create" and not sub else name
            path = api_path(resource or "", ns, target, f"{group}/{version}" if group else "")
            if sub and name:
                path += f"/{sub}"
        groups = () if deny == "unauthenticated" else actor.groups
        user = "" if deny == "unauthenticated" else actor.username
        level = self.policy.level(user, groups, verb, group, resource, sub, ns, path)
        if level == "None":
            return []
        rng = self.cluster.rng
        long_running = resource is not None and is_long_running(verb, sub)
        if latency is None:
            latency = rng.uniform(300, 600) if verb == "watch" else rng.uniform(0.0015, 0.03)
        if code is None:
            if deny:
                code = _DENIAL_CODE[deny]
            elif sub in UPGRADES:
                code = 101
            else:
                code = 201 if verb == "create" else 200
        audit_id = self.cluster.uuid()
        record: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": audit_id,
            "stage": "ResponseComplete",
            "requestURI": f"{path}?{query}" if query else path,
            "verb": verb,
            "user": {} if deny == "unauthenticated" else who.user(),
        }
        if impersonate is not None:
            record["impersonatedUser"] = {
                "username": impersonate.username,
                "groups": list(impersonate.groups),
            }
        record["sourceIPs"] = [who.source_ip]
        record["userAgent"] = who.user_agent
        if resource is not None:
            ref: dict[str, Any] = {"resource": resource}
            if ns:
                ref["namespace"] = ns
            if name:
                ref["name"] = name
            if group:
                ref["apiGroup"] = group
            ref["apiVersion"] = version
            if sub:
                ref["subresource"] = sub
            record["objectRef"] = ref
        status: dict[str, Any] = {"metadata": {}}
        if code >= 400:
            if message is None:
                message = (
                    "Authentication failed, attempted: bearer"
                    if deny == "unauthenticated"
                    else forbidden_message(actor.username, verb, resource, ns, name, group, sub, path)
                    if code == 403
                    else f'{resource} "{name}" not found'
                    if code == 404
                    else f'Operation cannot be fulfilled on {resource}{"." + group if group else ""} "{name}": '
                    "the object has been modified; please apply your changes to the latest version and try again"
                )
            status.update(status="Failure", message=message, reason=_REASON.get(code, "Unknown"))
        status["code"] = code
        record["responseStatus"] = status
        if body is not None and level in ("Request", "RequestResponse"):
            record["requestObject"] = body
        if level == "RequestResponse" and resource is not None:
            if code >= 400:
                record["responseObject"] = self._status_body(status, resource, name, group)
            elif response is not None:
                record["responseObject"] = response
        record["requestReceivedTimestamp"] = timestamp(t)
        notes: dict[str, str] = {}
        if deny != "unauthenticated":
            # The authorizer's decision and reason are always annotated, the reason often empty (the Node
            # authorizer's, a refusal's, a webhook's).
            notes["authorization.k8s.io/decision"] = "forbid" if deny == "rbac" else "allow"
            notes["authorization.k8s.io/reason"] = (
                ("" if deny == "rbac" else actor.reason) if reason is None else reason
            )
        if annotations:
            notes.update(annotations)
        if deny == "unauthenticated":
            # Failed authentication is logged once, when the 401 is written, with no user.
            record["stage"] = "ResponseStarted"
            record["stageTimestamp"] = timestamp(t + min(latency, 0.01))
            return [record]
        out: list[dict[str, Any]] = []
        if long_running:
            first = dict(record)
            first["stage"] = "ResponseStarted"
            first.pop("responseObject", None)
            first["stageTimestamp"] = timestamp(t + rng.uniform(0.002, 0.04))
            if notes:
                first["annotations"] = notes
            out.append(first)
        record["stageTimestamp"] = timestamp(t + latency)
        if notes:
            record["annotations"] = notes
        out.append(record)
        return out

    @staticmethod
    def _status_body(status: dict[str, Any], resource: str, name: str | None, group: str) -> dict[str, Any]:
        details: dict[str, Any] = {"name": name} if name else {}
        if group:
            details["group"] = group
        details["kind"] = resource
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": status["message"],
            "reason": status["reason"],
            "details": details,
            "code": status["code"],
        }
