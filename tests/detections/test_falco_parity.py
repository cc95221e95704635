"""Peer parity with Falco's Kubernetes audit rules, on Falco's own captured traces and regression
table (../shared/datasets/falco-k8s-audit, read in place).

Every Falco positive whose rule has an equivalent here must raise it, as many times as Falco does;
every negative aimed at such a rule must raise nothing. Falco rules without an equivalent, and cases
that only hold under Falco's allow-list overrides, are listed with the reason; for the latter the test
checks that ours really does differ, so the list cannot go stale.

Each case is evaluated alone, as Falco's regression table runs it. Two privileged-pod traces hold one
captured request (the same auditID) and two namespace traces another: one run over all the traces
raises one alert per rule and request there, fewer than the sum of the cases
(tests/pipeline/test_run.py checks the privileged pair).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.model import AuditEvent, DeadLetter, Source
from support.paths import DATASETS, SHIPPED_RULES

DATASET = DATASETS / "falco-k8s-audit"
RULES_DIR = SHIPPED_RULES

# Falco rule -> the rules here that detect the same thing (file stems).
EQUIVALENT: dict[str, tuple[str, ...]] = {
    "Create Privileged Pod": ("privileged_container",),
    "Create Sensitive Mount Pod": ("hostpath_sensitive_mount", "hostpath_root_filesystem_mount"),
    "Create HostNetwork Pod": ("host_network_workload",),
    "Create NodePort Service": ("service_exposed_nodeport_or_loadbalancer",),
    "Create/Modify Configmap With Private Credentials": ("configmap_with_credentials",),
    "Anonymous Request Allowed": ("anonymous_request_allowed",),
    "Attach/Exec Pod": ("pod_exec_or_attach",),
    "Service Account Created in Kube Namespace": ("serviceaccount_created_in_kube_namespace",),
    "System ClusterRole Modified/Deleted": ("rbac_system_role_modified",),
    "Attach to cluster-admin Role": ("rbac_binding_to_cluster_admin",),
    "ClusterRole With Wildcard Created": ("rbac_role_with_wildcard",),
    "ClusterRole With Pod Exec Created": ("rbac_role_grants_pod_exec",),
}

# Falco rules with no counterpart here, and why.
NO_EQUIVALENT: dict[str, str] = {
    "Create Disallowed Pod": "an allow-list of images the operator maintains; kubesigma flags known-bad images instead",
    "Disallowed K8s User": "an allow-list of users the operator maintains",
    "Create Disallowed Namespace": "an allow-list of namespaces the operator maintains",
    "ClusterRole With Write Privileges Created": (
        "write verbs are ordinary in operator roles; kubesigma flags the dangerous grants "
        "(wildcards, exec, secrets, escalate/bind/impersonate, nodes/proxy) instead"
    ),
    "json_pointer_example": "a test rule of Falco's rule syntax, not a detection",
    **{
        name: "plain activity (an ordinary object created or deleted); kubesigma does not alert on it"
        for name in (
            "K8s Deployment Created",
            "K8s Deployment Deleted",
            "K8s Service Created",
            "K8s Service Deleted",
            "K8s ConfigMap Created",
            "K8s ConfigMap Deleted",
            "K8s Namespace Created",
            "K8s Namespace Deleted",
            "K8s Serviceaccount Created",
            "K8s Serviceaccount Deleted",
            "K8s Role/Clusterrole Created",
            "K8s Role/Clusterrole Deleted",
            "K8s Role/Clusterrolebinding Created",
            "K8s Role/Clusterrolebinding Deleted",
            "K8s Secret Created",
            "K8s Secret Deleted",
        )
    },
}

# Cases whose outcome comes from an override file that trusts or allows something by name, or from
# Falco's allow-list of system images: case -> (our rules it concerns, why ours differs).
_TRUSTED = (
    "trust_nginx_container.yaml trusts the nginx image by name; kubesigma judges the spec, not the image name"
)
_KUBE_NS = (
    "Falco alerts on any pod there whose image is outside its allow-list of system images; these pods come "
    "from the replicaset-controller, a system identity, which kubesigma leaves out: the creator is judged "
    "when the Deployment is created"
)
ALLOW_LIST_ONLY: dict[str, tuple[tuple[str, ...], str]] = {
    "create_privileged_trusted_pod": (("privileged_container",), _TRUSTED),
    "compat_engine_v4_create_privileged_trusted_pod": (("privileged_container",), _TRUSTED),
    "create_sensitive_mount_trusted_pod": (
        ("hostpath_sensitive_mount", "hostpath_root_filesystem_mount"),
        _TRUSTED,
    ),
    "create_hostnetwork_trusted_pod": (("host_network_workload",), _TRUSTED),
    "compat_engine_v4_create_hostnetwork_trusted_pod": (("host_network_workload",), _TRUSTED),
    "create_pod_in_kube_system_namespace": (("workload_in_kube_namespace_by_non_system_identity",), _KUBE_NS),
    "create_pod_in_kube_public_namespace": (("workload_in_kube_namespace_by_non_system_identity",), _KUBE_NS),
}

# Negative cases -> the Falco rule they check does not fire.
NEGATIVE_TARGET: dict[str, str] = {
    "compat_engine_v4_create_allowed_pod": "Create Disallowed Pod",
    "compat_engine_v4_create_unprivileged_pod": "Create Privileged Pod",
    "user_in_allowed_set": "Disallowed K8s User",
    "create_allowed_pod": "Create Disallowed Pod",
    "create_unprivileged_pod": "Create Privileged Pod",
    "create_unprivileged_trusted_pod": "Create Privileged Pod",
    "create_unsensitive_mount_pod": "Create Sensitive Mount Pod",
    "create_unsensitive_mount_trusted_pod": "Create Sensitive Mount Pod",
    "create_nohostnetwork_pod": "Create HostNetwork Pod",
    "create_nohostnetwork_trusted_pod": "Create HostNetwork Pod",
    "create_nonodeport_service": "Create NodePort Service",
    "create_configmap_no_private_creds": "Create/Modify Configmap With Private Credentials",
    "namespace_in_allowed_set": "Create Disallowed Namespace",
    "create_service_account_token_secret": "K8s Secret Created",
    "create_kube_system_secret": "K8s Secret Created",
}


def _cases() -> dict[str, dict[str, Any]]:
    path = DATASET / "expected_hits.json"
    if not path.is_file():
        pytest.fail(f"Falco dataset not found at {DATASET} (expected ../shared/datasets/falco-k8s-audit)")
    return json.loads(path.read_text(encoding="utf-8"))


CASES = _cases()


@cache
def _ruleset() -> Any:
    from kubesigma.detections.engine import RuleSet

    return RuleSet.load([RULES_DIR])


@cache
def _trace_hits(trace: str) -> tuple[tuple[frozenset[str], ...], int]:
    """Per decoded event of a trace, the stems of the rules it raises; and how many records dead-lettered."""
    ruleset = _ruleset()
    hits: list[frozenset[str]] = []
    dead = 0
    for n, line in enumerate((DATASET / "traces" / trace).read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        for out in decode_value(orjson.loads(line), Source(trace, line=n), raw=line):
            if isinstance(out, AuditEvent):
                hits.append(frozenset(Path(r.path).stem for r in ruleset.match(out)))
            elif isinstance(out, DeadLetter):
                dead += 1
    return tuple(hits), dead


def _count(trace: str, stems: tuple[str, ...]) -> int:
    hits, _ = _trace_hits(trace)
    return sum(1 for event_hits in hits if event_hits & set(stems))


def _falco_rule(name: str) -> str:
    case = CASES[name]
    if case["detect"]:
        (counts,) = case["detect_counts"]
        (rule,) = counts
        return str(rule)
    return NEGATIVE_TARGET.get(name, "")


def test_every_falco_case_is_classified() -> None:
    for name, _case in CASES.items():
        if name in ALLOW_LIST_ONLY or name == "fal_01_003":
            continue
        rule = _falco_rule(name)
        assert rule, f"{name}: negative case without a target rule"
        assert rule in EQUIVALENT or rule in NO_EQUIVALENT, f"{name}: Falco rule {rule!r} not mapped"


def test_mapped_rules_exist() -> None:
    stems = {p.stem for p in RULES_DIR.rglob("*.yml")}
    for ours in EQUIVALENT.values():
        assert set(ours) <= stems


POSITIVES = sorted(
    n for n, c in CASES.items() if c["detect"] and n not in ALLOW_LIST_ONLY and _falco_rule(n) in EQUIVALENT
)
NEGATIVES = sorted(
    n
    for n, c in CASES.items()
    if not c["detect"] and n not in ALLOW_LIST_ONLY and _falco_rule(n) in EQUIVALENT
)


@pytest.mark.parametrize("name", POSITIVES)
def test_falco_positive_raises_the_equivalent_rule_as_often(name: str) -> None:
    case = CASES[name]
    (counts,) = case["detect_counts"]
    ((rule, falco_count),) = counts.items()
    assert _count(case["trace"], EQUIVALENT[rule]) == falco_count


@pytest.mark.parametrize("name", NEGATIVES)
def test_falco_negative_raises_no_equivalent_rule(name: str) -> None:
    case = CASES[name]
    assert _count(case["trace"], EQUIVALENT[_falco_rule(name)]) == 0


@pytest.mark.parametrize("name", sorted(ALLOW_LIST_ONLY))
def test_allow_list_cases_really_differ_from_falco(name: str) -> None:
    """These hold in Falco only because of an override or an allow-list; kubesigma's outcome differs."""
    case = CASES[name]
    stems, _why = ALLOW_LIST_ONLY[name]
    ours = _count(case["trace"], stems)
    assert (ours == 0) if case["detect"] else (ours > 0)


def test_falco_bad_record_is_dead_lettered_and_raises_nothing() -> None:
    hits, dead = _trace_hits(CASES["fal_01_003"]["trace"])
    assert dead == 1 and hits == ()


def test_no_mapped_falco_negative_is_counted_twice() -> None:
    assert set(POSITIVES).isdisjoint(NEGATIVES)
    assert len(POSITIVES) >= 15 and len(NEGATIVES) >= 8
