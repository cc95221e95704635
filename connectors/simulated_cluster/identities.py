"""Who makes requests in a simulated cluster, as kube-apiserver's audit Events record them: the `user`
block, source IP, user agent and the RBAC reason the authorizer gives for an allowed request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

K8S_VERSION = "v1.29.4"
K8S_COMMIT = "55019c83b0fd51ef4ced8c29eec2c4847f896e74"[:7]


def rbac_reason(kind: str, binding: str, role: str, subject_kind: str, subject: str) -> str:
    return f'RBAC: allowed by {kind} "{binding}" of ClusterRole "{role}" to {subject_kind} "{subject}"'


# What kube-apiserver's default ClusterRoleBinding lets every unauthenticated caller do (/version, /healthz).
PUBLIC_INFO_VIEWER = rbac_reason(
    "ClusterRoleBinding",
    "system:public-info-viewer",
    "system:public-info-viewer",
    "Group",
    "system:unauthenticated",
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who makes a request, as the audit Event's `user` block, source IPs and user agent record it."""

    username: str
    groups: tuple[str, ...]
    uid: str
    source_ip: str
    user_agent: str
    reason: str  # authorization.k8s.io/reason for its allowed requests
    # `user.extra` of a pod-bound service-account token: the pod it was issued to, wherever it is used.
    pod: tuple[str, str, str] | None = None  # (pod name, pod uid, token id)
    # Other `user.extra` an authenticator adds (EKS's IAM authenticator: arn, sessionName ...).
    extra: tuple[tuple[str, str], ...] = ()

    def user(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.pod:
            name, uid, jti = self.pod
            out["extra"] = {
                "authentication.kubernetes.io/credential-id": [f"JTI={jti}"],
                "authentication.kubernetes.io/pod-name": [name],
                "authentication.kubernetes.io/pod-uid": [uid],
            }
        if self.extra:
            out["extra"] = {key: [value] for key, value in self.extra}
        return out


def anonymous(source_ip: str, user_agent: str, reason: str = "") -> Identity:
    """An unauthenticated caller, as kube-apiserver records one (`reason`: why it was allowed, if it was)."""
    return Identity("system:anonymous", ("system:unauthenticated",), "", source_ip, user_agent, reason)


def component_agent(component: str, suffix: str = "") -> str:
    """The user agent a Kubernetes component's client sends (client-go's default, plus what it adds)."""
    ua = f"{component}/{K8S_VERSION} (linux/amd64) kubernetes/{K8S_COMMIT}"
    return f"{ua}/{suffix}" if suffix else ua
