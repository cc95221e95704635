"""Audit Policies as kube-apiserver applies them: the first rule that matches a request decides whether
it is logged and at which level. GKE and EKS log with GCE's policy (`create-master-audit-policy` in
kubernetes/cluster/gce/gci/configure-helper.sh, which EKS's documentation links as its own); the
self-managed cluster uses kubesigma's recommended policy (docs/audit-policy.yaml, mirrored here)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

LEVELS = ("None", "Metadata", "Request", "RequestResponse")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule of an audit.k8s.io/v1 Policy. `resources` pairs an API group with resource names (empty:
    every resource of the group, subresources included); a rule with `resources` matches only resource
    requests, one with `paths` (nonResourceURLs) only non-resource ones, one with neither both."""

    level: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # userGroups
    verbs: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    resources: tuple[tuple[str, tuple[str, ...]], ...] = ()
    paths: tuple[str, ...] = ()

    def matches(
        self,
        user: str,
        groups: tuple[str, ...],
        verb: str,
        api_group: str | None,
        resource: str | None,
        subresource: str | None,
        namespace: str | None,
        path: str,
    ) -> bool:
        if self.users and user not in self.users:
            return False
        if self.groups and not set(self.groups) & set(groups):
            return False
        if self.verbs and verb not in self.verbs:
            return False
        if resource is None:  # a non-resource URL
            if self.resources or self.namespaces:
                return False
            return not self.paths or any(fnmatchcase(path, p) for p in self.paths)
        if self.paths:
            return False
        if self.namespaces and (namespace or "") not in self.namespaces:
            return False
        if not self.resources:
            return True
        name = f"{resource}/{subresource}" if subresource else resource
        wanted = (name, f"{resource}/*", f"*/{subresource}" if subresource else "", "*")
        return any(
            group == (api_group or "") and (not names or any(n in wanted for n in names))
            for group, names in self.resources
        )


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    name: str
    rules: tuple[PolicyRule, ...]

    def level(
        self,
        user: str,
        groups: tuple[str, ...],
        verb: str,
        api_group: str | None,
        resource: str | None,
        subresource: str | None,
        namespace: str | None,
        path: str,
    ) -> str:
        """The level this request is logged at ("None": not logged); no rule matching means None."""
        for rule in self.rules:
            if rule.matches(user, groups, verb, api_group, resource, subresource, namespace, path):
                return rule.level
        return "None"


def _groups(*names: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((name, ()) for name in names)


# The API groups GCE's policy calls "known": their writes are logged with bodies, their reads at Request.
_KNOWN_GROUPS = _groups(
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "extensions",
    "metrics.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
)
_NODE_READS = (("", ("nodes", "nodes/status")),)
_CONTROL_PLANE = (
    "system:kube-controller-manager",
    "system:cloud-controller-manager",
    "system:kube-scheduler",
    "system:serviceaccount:kube-system:endpoint-controller",
)

GCE_POLICY = AuditPolicy(
    "gce",
    (
        PolicyRule(
            "None",
            users=("system:kube-proxy",),
            verbs=("watch",),
            resources=(("", ("endpoints", "services", "services/status")),),
        ),
        PolicyRule(
            "None",
            users=("system:unsecured",),
            namespaces=("kube-system",),
            verbs=("get",),
            resources=(("", ("configmaps",)),),
        ),
        PolicyRule("None", users=("kubelet",), verbs=("get",), resources=_NODE_READS),
        PolicyRule("None", groups=("system:nodes",), verbs=("get",), resources=_NODE_READS),
        PolicyRule(
            "None",
            users=_CONTROL_PLANE,
            verbs=("get", "update"),
            namespaces=("kube-system",),
            resources=(("", ("endpoints",)),),
        ),
        PolicyRule(
            "None",
            users=("system:apiserver",),
            verbs=("get",),
            resources=(("", ("namespaces", "namespaces/status", "namespaces/finalize")),),
        ),
        PolicyRule(
            "None",
            users=("cluster-autoscaler",),
            verbs=("get", "update"),
            namespaces=("kube-system",),
            resources=(("", ("configmaps", "endpoints")),),
        ),
        PolicyRule(
            "None",
            users=("system:kube-controller-manager", "system:cloud-controller-manager"),
            verbs=("get", "list"),
            resources=(("metrics.k8s.io", ()),),
        ),
        PolicyRule("None", paths=("/healthz*", "/version", "/swagger*")),
        PolicyRule("None", resources=(("", ("events",)),)),
        PolicyRule(
            "Request",
            users=(
                "kubelet",
                "system:node-problem-detector",
                "system:serviceaccount:kube-system:node-problem-detector",
            ),
            verbs=("update", "patch"),
            resources=(("", ("nodes/status", "pods/status")),),
        ),
        PolicyRule(
            "Request",
            groups=("system:nodes",),
            verbs=("update", "patch"),
            resources=(("", ("nodes/status", "pods/status")),),
        ),
        PolicyRule(
            "Request",
            users=("system:serviceaccount:kube-system:namespace-controller",),
            verbs=("deletecollection",),
        ),
        PolicyRule(
            "Metadata",
            resources=(
                ("", ("secrets", "configmaps", "serviceaccounts/token")),
                ("authentication.k8s.io", ("tokenreviews",)),
            ),
        ),
        PolicyRule("Request", verbs=("get", "list", "watch"), resources=_KNOWN_GROUPS),
        PolicyRule("RequestResponse", resources=_KNOWN_GROUPS),
        PolicyRule("Metadata"),
    ),
)

_EVENTS = (("", ("events",)), ("events.k8s.io", ("events",)))

# docs/audit-policy.yaml, rule for rule (tests/bench/test_noise_bench.py compares the two).
KUBESIGMA_POLICY = AuditPolicy(
    "kubesigma-recommended",
    (
        PolicyRule(
            "Metadata",
            resources=(
                ("", ("secrets", "serviceaccounts/token")),
                ("authentication.k8s.io", ("tokenreviews", "tokenrequests")),
            ),
        ),
        PolicyRule(
            "None", verbs=("get", "update", "patch"), resources=(("coordination.k8s.io", ("leases",)),)
        ),
        PolicyRule(
            "None",
            groups=("system:nodes",),
            verbs=("get", "update", "patch"),
            resources=(("", ("nodes", "nodes/status")),),
        ),
        PolicyRule(
            "None",
            users=("system:kube-proxy",),
            verbs=("watch",),
            resources=(
                ("", ("endpoints", "services", "services/status")),
                ("discovery.k8s.io", ("endpointslices",)),
            ),
        ),
        PolicyRule("None", paths=("/healthz*", "/livez*", "/readyz*", "/version", "/version/")),
        PolicyRule("Metadata", verbs=("delete", "deletecollection"), resources=_EVENTS),
        PolicyRule("None", resources=_EVENTS),
        PolicyRule(
            "Metadata",
            resources=(
                (
                    "",
                    (
                        "pods/exec",
                        "pods/attach",
                        "pods/portforward",
                        "pods/proxy",
                        "services/proxy",
                        "nodes/proxy",
                    ),
                ),
            ),
        ),
        PolicyRule(
            "RequestResponse",
            verbs=("create", "update", "patch"),
            resources=(
                ("", ("pods", "pods/ephemeralcontainers", "replicationcontrollers")),
                ("apps", ("deployments", "daemonsets", "statefulsets", "replicasets")),
                ("batch", ("jobs", "cronjobs")),
            ),
        ),
        PolicyRule(
            "Request",
            verbs=("create", "update", "patch", "delete", "deletecollection"),
            resources=(
                (
                    "rbac.authorization.k8s.io",
                    ("roles", "clusterroles", "rolebindings", "clusterrolebindings"),
                ),
                ("", ("services", "configmaps", "serviceaccounts", "namespaces")),
                ("networking.k8s.io", ("ingresses", "networkpolicies")),
                (
                    "certificates.k8s.io",
                    ("certificatesigningrequests", "certificatesigningrequests/approval"),
                ),
                (
                    "admissionregistration.k8s.io",
                    ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"),
                ),
            ),
        ),
        PolicyRule("Metadata"),
    ),
)
