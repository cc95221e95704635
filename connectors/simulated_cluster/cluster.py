"""A small self-managed cluster's state: its nodes, workloads and pods, the people and components that
exist in it, and the ids, names and resource versions its API server hands out, all drawn from one
`random.Random`."""

from __future__ import annotations

import random
import uuid

from kubesigma.connectors.simulated_cluster.identities import Identity, component_agent, rbac_reason

NODE_COUNT = 3
CONTROL_PLANE_IP = "10.0.1.10"
CI_RUNNER_IP = "10.0.5.20"
PEOPLE = (
    ("alice@example.com", ["platform-admins", "system:authenticated"], "192.168.50.14", "darwin/arm64"),
    ("bob@example.com", ["developers", "system:authenticated"], "192.168.50.31", "linux/amd64"),
    ("carol@example.com", ["developers", "system:authenticated"], "192.168.50.47", "windows/amd64"),
)

# Workloads: namespace -> (deployment name, image, port).
APPS = {
    "shop": (
        ("web", "registry.example.com/shop/web:2.14.1", 8080),
        ("cart", "registry.example.com/shop/cart:1.9.0", 8081),
    ),
    "payments": (("api", "registry.example.com/payments/api:3.2.0", 9000),),
    "monitoring": (("grafana", "grafana/grafana:10.4.2", 3000),),
}

_DIGITS = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated name suffixes


class Cluster:
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
        # Who is always there. Their uids are drawn now, in this order: a seed's output depends on it.
        self.controller_manager = self.component(
            "system:kube-controller-manager", component_agent("kube-controller-manager", "leader-election")
        )
        self.scheduler = self.component(
            "system:kube-scheduler", component_agent("kube-scheduler", "leader-election")
        )
        self.ci_deployer = self.service_account(
            "ci",
            "deployer",
            CI_RUNNER_IP,
            "kubectl/v1.28.3 (linux/amd64) kubernetes/a8a1abc",
            rbac_reason("RoleBinding", "deployer-edit", "edit", "ServiceAccount", "ci/deployer"),
        )
        self.coredns = self.service_account(
            "kube-system",
            "coredns",
            "10.244.0.3",
            "coredns/v0.0.0 (linux/amd64) kubernetes/$Format",
            rbac_reason(
                "ClusterRoleBinding",
                "system:coredns",
                "system:coredns",
                "ServiceAccount",
                "kube-system/coredns",
            ),
            pod="coredns-76f75df574-x9k2p",
        )

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
            reason or rbac_reason("RoleBinding", name, name, "ServiceAccount", f"{ns}/{name}"),
            bound,
        )

    def node(self, node: str) -> Identity:
        user = f"system:node:{node}"
        # The Node authorizer allows without an RBAC reason.
        return Identity(
            user,
            ("system:nodes", "system:authenticated"),
            "",
            self.node_ips[node],
            component_agent("kubelet"),
            "",
        )

    def controller(self, name: str) -> Identity:
        return self.service_account(
            "kube-system",
            name,
            CONTROL_PLANE_IP,
            component_agent("kube-controller-manager", f"system:serviceaccount:kube-system:{name}"),
            rbac_reason(
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
            rbac_reason("ClusterRoleBinding", user, user, "User", user),
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
            rbac_reason("ClusterRoleBinding", groups[0], role, "Group", groups[0]),
        )
