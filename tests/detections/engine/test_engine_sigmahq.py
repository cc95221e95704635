"""SigmaHQ's Kubernetes, GCP and AWS rules load unmodified and match raw events (mapping included)."""

from __future__ import annotations

import copy
import json

import pytest

from kubesigma.connectors.model import AWS_CLOUDTRAIL, GCP_AUDIT, KUBERNETES_AUDIT
from kubesigma.detections.engine import RuleSet

HOSTPATH = "402b955c-8fe0-4a8c-b635-622b4ac5f902"
CAPABILITIES = "c5cd1b20-36bb-488d-8c05-486be3d0cb97"
EXEC = "a1b0ca4e-7835-413e-8471-3ff2b8a66be6"
ENUMERATION = "597a7e84-187d-458b-9e4f-2f5a0e676711"
RBAC_LISTING = "84b777bd-c946-4d17-aa2e-c39f5a454325"
BREAKGLASS = "76737c19-66ee-4c07-b65a-a03301d1573d"
GKE_SECRETS = "2f0bae2d-bf20-4465-be86-1311addebaa3"
EKS_CLUSTER = "33d50d03-20ec-4b74-a74e-1e65a38af1c0"


@pytest.fixture(scope="module")
def sigmahq(datasets) -> RuleSet:
    rules = datasets / "sigmahq-rules" / "rules"
    return RuleSet.load(
        [rules / "application" / "kubernetes", rules / "cloud" / "gcp", rules / "cloud" / "aws"]
    )


def trace(datasets, name: str) -> dict:
    lines = (datasets / "falco-k8s-audit" / "traces" / name).read_text().splitlines()
    return json.loads(next(line for line in lines if line.strip()))


def hits(rs: RuleSet, doc: dict, logsource=KUBERNETES_AUDIT) -> set[str]:
    return {r.id for r in rs.match_document(logsource, doc)}


def test_all_23_rules_load(sigmahq):
    assert len(sigmahq.rules) == 23


def test_hostpath_rule_sees_real_pod_volumes(sigmahq, datasets):
    assert HOSTPATH in hits(sigmahq, trace(datasets, "create_nginx_pod_sensitive_mount.json"))
    assert HOSTPATH not in hits(sigmahq, trace(datasets, "create_nginx_pod_unprivileged.json"))


def test_capabilities_rule_sees_added_capabilities(sigmahq, datasets):
    pod = trace(datasets, "create_nginx_pod_unprivileged.json")
    assert CAPABILITIES not in hits(sigmahq, pod)
    pod = copy.deepcopy(pod)
    pod["requestObject"]["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"add": ["SYS_ADMIN"]}
    }
    assert CAPABILITIES in hits(sigmahq, pod)


def test_exec_rule_matches_falco_exec_trace(sigmahq, datasets):
    assert EXEC in hits(sigmahq, trace(datasets, "exec_pod.json"))


def test_status_allow_quirk_means_authorization_decision_allow(sigmahq, datasets):
    event = copy.deepcopy(trace(datasets, "exec_pod.json"))
    event["requestURI"] = "/api/v1/namespaces/default/pods/web/exec?command=%2Fbin%2Fbash&command=-i"
    event["annotations"] = {"authorization.k8s.io/decision": "allow"}
    assert ENUMERATION in hits(sigmahq, event)
    event["annotations"] = {"authorization.k8s.io/decision": "forbid"}
    assert ENUMERATION not in hits(sigmahq, event)


def test_top_level_apigroup_means_objectref_apigroup(sigmahq):
    event = {
        "verb": "create",
        "objectRef": {"apiGroup": "authorization.k8s.io", "resource": "selfsubjectrulesreviews"},
    }
    assert RBAC_LISTING in hits(sigmahq, event)


def test_gke_secret_rule_matches_a_logentry(sigmahq, datasets):
    line = (datasets / "format-samples" / "gke-cloud-audit-logentries.jsonl").read_text().splitlines()[0]
    entry = json.loads(line)
    assert GKE_SECRETS not in hits(sigmahq, entry, GCP_AUDIT)
    entry["protoPayload"]["methodName"] = "io.k8s.core.v1.secrets.patch"
    assert GKE_SECRETS in hits(sigmahq, entry, GCP_AUDIT)


def test_breakglass_rule_matches_a_pod_created_with_the_annotation(sigmahq, datasets):
    line = (datasets / "format-samples" / "gke-cloud-audit-logentries.jsonl").read_text().splitlines()[0]
    entry = json.loads(line)
    entry["logName"] = "projects/foo/logs/cloudaudit.googleapis.com%2Factivity"
    entry["protoPayload"]["methodName"] = "io.k8s.core.v1.pods.create"
    entry["protoPayload"]["request"] = {
        "metadata": {"annotations": {"image-policy.k8s.io/break-glass": "true"}}
    }
    assert BREAKGLASS in hits(sigmahq, entry, GCP_AUDIT)
    entry["protoPayload"]["request"] = {"metadata": {"annotations": {}}}
    assert BREAKGLASS not in hits(sigmahq, entry, GCP_AUDIT)


def test_eks_rule_matches_a_cloudtrail_record(sigmahq):
    record = {"eventSource": "eks.amazonaws.com", "eventName": "DeleteCluster", "awsRegion": "eu-west-1"}
    assert hits(sigmahq, record, AWS_CLOUDTRAIL) == {EKS_CLUSTER}


def test_falco_traces_hit_the_expected_sigmahq_rules(sigmahq, datasets):
    found: dict[str, set[str]] = {}
    for path in sorted((datasets / "falco-k8s-audit" / "traces").glob("*.json")):
        for line in path.read_text().splitlines():
            if line.strip():
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("kind") == "Event":
                    found.setdefault(path.name, set()).update(
                        r.title for r in sigmahq.match_document(KUBERNETES_AUDIT, doc)
                    )
    assert found["create_serviceaccount.json"] == {"New Kubernetes Service Account Created"}
    assert found["delete_deployment.json"] == {"Deployment Deleted From Kubernetes Cluster"}
    assert found["create_pod_kube_system_namespace.json"] == {"Creation Of Pod In System Namespace"}
    assert found["attach_cluster_admin_role.json"] == {"Kubernetes Rolebinding Modification"}
    assert sum(1 for v in found.values() if v) == 15
