"""The busy clusters of the noise benchmark, one per platform (GKE, EKS, self-managed): their nodes, apps
and pods, and who calls their API servers as each platform names them (node users, control-plane and
platform components, add-on service accounts, people and CI), with the addresses and user agents
each comes from."""

from __future__ import annotations

import random
from dataclasses import dataclass

from kubesigma.connectors.simulated_cluster.audit_policy import GCE_POLICY, KUBESIGMA_POLICY, AuditPolicy
from kubesigma.connectors.simulated_cluster.cluster import Cluster
from kubesigma.connectors.simulated_cluster.identities import Identity, rbac_reason

KUBECTL = "kubectl/v1.30.4 (darwin/arm64) kubernetes/a51b3b7"
KUBECTL_OLD = "kubectl/v1.29.7 (linux/amd64) kubernetes/4e4a18878"  # SPDY exec: verb create
KUBECTL_CI = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350"
HELM = "Helm/3.15.2"


@dataclass(frozen=True, slots=True)
class Platform:
    """What differs between platforms before any request is made."""

    name: str  # gke | eks | self-managed
    cluster: str
    version: str  # what components put in their user agents
    commit: str
    control_plane_ip: str  # where the controller manager and scheduler call from
    node_ip_prefix: str
    pod_ip_prefix: str
    policy: AuditPolicy
    office_ips: tuple[str, ...]  # where people's kubectl calls come from
    ci_ips: tuple[str, ...]
    project: str = ""  # GKE project id, EKS account id
    region: str = ""


# Benign public addresses are drawn from TEST-NET-1 (office egress) and cloud ranges (CI runners);
# attackers use TEST-NET-2/3 (attacks.ATTACKER_IPS). No rule reads these ranges.
GKE = Platform(
    "gke",
    "prod-gke",
    "v1.30.5-gke.1014001",
    "b5b7d1f",
    "::1",
    "10.128.0.",
    "10.52.",
    GCE_POLICY,
    ("192.0.2.10", "192.0.2.11"),
    ("34.116.88.12", "34.118.240.3", "35.246.7.90"),
    project="acme-prod",
    region="europe-west1",
)
EKS = Platform(
    "eks",
    "prod-eks",
    "v1.30.6-eks-7f9249a",
    "7f9249a",
    "127.0.0.1",
    "10.0.",
    "10.0.",
    GCE_POLICY,
    ("192.0.2.10", "192.0.2.11"),
    ("20.57.23.41", "4.175.112.9", "52.224.67.130"),
    project="123456789012",
    region="eu-west-1",
)
SELF_MANAGED = Platform(
    "self-managed",
    "prod-dc1",
    "v1.30.6",
    "00f20e4",
    "10.20.0.10",
    "10.20.0.",
    "10.244.",
    KUBESIGMA_POLICY,
    ("10.8.0.14", "10.8.0.31", "10.8.0.47"),
    ("10.30.5.20",),
)
PLATFORMS = {p.name: p for p in (GKE, EKS, SELF_MANAGED)}

# Applications: namespace -> (app, image, port); their service account has the app's name.
APPS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "shop": (
        ("web", "registry.acme.dev/shop/web:2.14.1", 8080),
        ("cart", "registry.acme.dev/shop/cart:1.9.0", 8081),
        ("checkout", "registry.acme.dev/shop/checkout:4.2.3", 8080),
        ("catalog", "registry.acme.dev/shop/catalog:3.0.7", 8080),
    ),
    "payments": (
        ("api", "registry.acme.dev/payments/api:3.2.0", 9000),
        ("worker", "registry.acme.dev/payments/worker:3.2.0", 9001),
    ),
    "search": (("indexer", "registry.acme.dev/search/indexer:0.18.2", 7000),),
    "identity": (("auth", "registry.acme.dev/identity/auth:5.1.0", 8443),),
}
DATABASES = (("data", "postgres-0", 5432), ("data", "redis-master-0", 6379))
# People: (name, groups, platform tag of their kubectl, role they hold).
PEOPLE = (
    ("alice@acme.dev", ("platform-admins",), "cluster-admin"),
    ("bob@acme.dev", ("developers",), "edit"),
    ("carol@acme.dev", ("developers",), "edit"),
    ("dave@acme.dev", ("sre",), "admin"),
)


class BusyCluster(Cluster):
    """A production cluster of one platform: a dozen nodes, apps with replicas, and every caller."""

    def __init__(self, rng: random.Random, platform: Platform) -> None:
        super().__init__(rng, platform.cluster)
        self.platform = platform
        self.nodes = tuple(self._node_name(i) for i in range(12))
        self.node_ips = {n: f"{platform.node_ip_prefix}{20 + i}" for i, n in enumerate(self.nodes)}
        if platform.name == "eks":
            self.node_ips = {n: n.split(".")[0][3:].replace("-", ".") for n in self.nodes}
        self.spare_nodes = tuple(self._node_name(12 + i) for i in range(4))  # what the autoscaler adds
        for i, n in enumerate(self.spare_nodes):
            self.node_ips[n] = (
                n.split(".")[0][3:].replace("-", ".")
                if platform.name == "eks"
                else f"{platform.node_ip_prefix}{40 + i}"
            )
        self.pods = []
        for ns, apps in APPS.items():
            for app, _image, _port in apps:
                rs = f"{app}-{self.suffix(9)}"
                for _ in range(3):
                    self.pods.append((ns, f"{rs}-{self.suffix(5)}", app, rng.choice(self.nodes)))
        self._identities: dict[tuple[str, ...], Identity] = {}

    # ---- names ------------------------------------------------------------------------------------

    def _node_name(self, i: int) -> str:
        p = self.platform
        if p.name == "gke":
            pool = "default-pool-3f0c9a1e" if i % 3 else "highmem-pool-8b2d4c7a"
            return f"gke-{p.cluster}-{pool}-{self.suffix(4)}"
        if p.name == "eks":
            return f"ip-10-0-{(i % 3) * 16 + 1 + i // 3}-{self.rng.randrange(10, 250)}.{p.region}.compute.internal"
        return f"worker-{i + 1:02d}"

    def agent(self, component: str, suffix: str = "", version: str | None = None) -> str:
        """A client-go user agent of a component built with this platform's Kubernetes."""
        ua = f"{component}/{version or self.platform.version} (linux/amd64) kubernetes/{self.platform.commit}"
        return f"{ua}/{suffix}" if suffix else ua

    def pod_ip(self) -> str:
        return f"{self.platform.pod_ip_prefix}{self.rng.randrange(1, 60)}.{self.rng.randrange(2, 250)}"

    # ---- callers ----------------------------------------------------------------------------------

    def _cached(self, key: tuple[str, ...], make: object) -> Identity:
        found = self._identities.get(key)
        if found is None:
            found = self._identities[key] = make()  # type: ignore[operator]
        return found

    def node(self, node: str) -> Identity:
        p = self.platform

        def make() -> Identity:
            user = f"system:node:{node}"
            ua = self.agent("kubelet")
            if p.name != "eks":
                return Identity(
                    user, ("system:nodes", "system:authenticated"), "", self.node_ips[node], ua, ""
                )
            # EKS kubelets authenticate through the IAM authenticator with the node role's session.
            instance = f"i-0{self.uid_of('instance:' + node).replace('-', '')[:16]}"
            role = "eks-prod-node-role"
            return Identity(
                user,
                ("system:bootstrappers", "system:nodes", "system:authenticated"),
                f"aws-iam-authenticator:{p.project}:AROAZ4QH7EXAMPLENODE",
                self.node_ips[node],
                ua,
                "",
                extra=(
                    ("accessKeyId", "ASIAZ4QH7EXAMPLE" + instance[-4:].upper()),
                    ("arn", f"arn:aws:sts::{p.project}:assumed-role/{role}/{instance}"),
                    ("canonicalArn", f"arn:aws:iam::{p.project}:role/{role}"),
                    ("principalId", "AROAZ4QH7EXAMPLENODE"),
                    ("sessionName", instance),
                    ("sigs.k8s.io/aws-iam-authenticator/principalId", "AROAZ4QH7EXAMPLENODE"),
                ),
            )

        return self._cached(("node", node), make)

    def controller(self, name: str) -> Identity:
        """One of kube-controller-manager's per-controller service accounts."""

        def make() -> Identity:
            return self.service_account(
                "kube-system",
                name,
                self.platform.control_plane_ip,
                self.agent("kube-controller-manager", f"system:serviceaccount:kube-system:{name}"),
                rbac_reason(
                    "ClusterRoleBinding",
                    f"system:controller:{name}",
                    f"system:controller:{name}",
                    "ServiceAccount",
                    f"kube-system/{name}",
                ),
            )

        return self._cached(("controller", name), make)

    def system_user(self, user: str, ua: str, ip: str | None = None, role: str | None = None) -> Identity:
        """A control-plane or platform component with a user of its own (system:kube-scheduler, eks:...)."""

        def make() -> Identity:
            return Identity(
                user,
                ("system:authenticated",),
                "",
                ip or self.platform.control_plane_ip,
                ua,
                rbac_reason("ClusterRoleBinding", role or user, role or user, "User", user),
            )

        return self._cached(("user", user, ip or ""), make)

    def workload(self, ns: str, sa: str, pod_prefix: str, ua: str, role: str | None = None) -> Identity:
        """A service account used from inside its pod (bound token, the pod's address)."""

        def make() -> Identity:
            pod = f"{pod_prefix}-{self.suffix(10)}-{self.suffix(5)}"
            reason = rbac_reason("ClusterRoleBinding", role or sa, role or sa, "ServiceAccount", f"{ns}/{sa}")
            return self.service_account(ns, sa, self.pod_ip(), ua, reason, pod=pod)

        return self._cached(("workload", ns, sa), make)

    def person(self, i: int | None = None) -> Identity:
        name, groups, role = PEOPLE[self.rng.randrange(len(PEOPLE)) if i is None else i]
        p = self.platform
        ua = KUBECTL if self.rng.random() < 0.8 else KUBECTL_OLD
        ip = p.office_ips[PEOPLE.index((name, groups, role)) % len(p.office_ips)]
        if p.name == "gke":
            # Google accounts: RBAC bound to their group, or allowed by their IAM role (GKE's IAM
            # authorizer gives no reason).
            reason = (
                ""
                if role == "cluster-admin"
                else rbac_reason(
                    "ClusterRoleBinding", f"{groups[0]}-{role}", role, "Group", f"{groups[0]}@acme.dev"
                )
            )
            return Identity(name, ("system:authenticated",), "", ip, ua, reason)
        if p.name == "eks":
            sso = {"cluster-admin": "PlatformAdmin", "admin": "SRE"}.get(role, "Developer")
            rid = f"AWSReservedSSO_{sso}_{self.uid_of('sso:' + sso).replace('-', '')[:16]}"
            user = f"arn:aws:sts::{p.project}:assumed-role/{rid}/{name}"
            policy = {"cluster-admin": "AmazonEKSClusterAdminPolicy", "admin": "AmazonEKSAdminPolicy"}.get(
                role, "AmazonEKSEditPolicy"
            )
            return Identity(
                user,
                ("system:authenticated",),
                f"aws-iam-authenticator:{p.project}:AROAZ4QH7{sso.upper()[:8]}",
                ip,
                ua,
                f'EKS Access Policy: allowed by ClusterRoleBinding "{user}+arn:aws:eks::aws:cluster-access-policy/'
                f'{policy}" of ClusterRole "arn:aws:eks::aws:cluster-access-policy/{policy}" to User "{user}"',
                extra=(
                    ("accessKeyId", "ASIAZ4QH7EXAMPLEUSR"),
                    ("arn", user),
                    ("canonicalArn", f"arn:aws:iam::{p.project}:role/{rid}"),
                    ("principalId", f"AROAZ4QH7{sso.upper()[:8]}"),
                    ("sessionName", name),
                ),
            )
        return Identity(
            name,
            (*groups, "system:authenticated"),
            self.uid_of(name),
            ip,
            ua,
            rbac_reason("ClusterRoleBinding", f"{groups[0]}-{role}", role, "Group", groups[0]),
        )

    def ci(self) -> Identity:
        """The CI system's deployer: a Google service account, an IAM role, or a service-account token."""
        p = self.platform
        ip = self.rng.choice(p.ci_ips)
        ua = KUBECTL_CI if self.rng.random() < 0.7 else HELM
        if p.name == "gke":
            user = f"github-deployer@{p.project}.iam.gserviceaccount.com"
            reason = rbac_reason("ClusterRoleBinding", "ci-deployer", "ci-deployer", "User", user)
            return Identity(user, ("system:authenticated",), "", ip, ua, reason)
        if p.name == "eks":
            user = f"arn:aws:sts::{p.project}:assumed-role/github-actions-deployer/GitHubActions"
            policy = "AmazonEKSEditPolicy"
            return Identity(
                user,
                ("system:authenticated",),
                f"aws-iam-authenticator:{p.project}:AROAZ4QH7GITHUBCI",
                ip,
                ua,
                f'EKS Access Policy: allowed by RoleBinding "{user}+arn:aws:eks::aws:cluster-access-policy/{policy}" '
                f'of ClusterRole "arn:aws:eks::aws:cluster-access-policy/{policy}" to User "{user}"',
                extra=(
                    ("accessKeyId", "ASIAZ4QH7EXAMPLECI0"),
                    ("arn", user),
                    ("canonicalArn", f"arn:aws:iam::{p.project}:role/github-actions-deployer"),
                    ("principalId", "AROAZ4QH7GITHUBCI:GitHubActions"),
                    ("sessionName", "GitHubActions"),
                ),
            )
        reason = rbac_reason(
            "ClusterRoleBinding", "ci-deployer", "ci-deployer", "ServiceAccount", "ci/deployer"
        )
        return self.service_account("ci", "deployer", ip, ua, reason)
