"""`kubesigma rules coverage --policy FILE`: the shipped audit Policy leaves no rule blind; weaker
Policies leave exactly the rules that need what they drop."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubesigma.detections.policy_coverage import Policy, PolicyError, Request, analyse
from kubesigma.detections.rule_tests import RULES_DIR
from kubesigma.pipeline.commands.rules_coverage import run_coverage
from support.paths import REPO

SHIPPED_POLICY = REPO / "docs" / "audit-policy.yaml"
K8S_RULES = sorted((RULES_DIR / "kubernetes" / "audit").glob("*.yml"))


def _policy(tmp_path: Path, rules: list[dict], **extra: object) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules, **extra})
    )
    return path


def _reads_request_body(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return "requestObject." in text or "keywords:" in text


def _status(findings: list, name: str) -> str:
    (f,) = [f for f in findings if Path(f.path).name == name]
    return f.status


def test_shipped_policy_leaves_no_rule_blind(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_coverage(str(SHIPPED_POLICY), [str(RULES_DIR)]) == 0
    assert "0 cannot fire, 0 partly blind" in capsys.readouterr().out


def test_shipped_policy_is_an_audit_v1_policy_keeping_secrets_at_metadata() -> None:
    policy = Policy.load(SHIPPED_POLICY)
    for verb in ("get", "list", "create", "update"):
        level, _ = policy.level_of(
            Request("alice", ("system:authenticated",), verb, "secrets", namespace="shop")
        )
        assert level == 1  # Metadata: never the values
    level, _ = policy.level_of(
        Request("kubelet", ("system:nodes",), "create", "serviceaccounts", "token", namespace="shop")
    )
    assert level == 1


def test_metadata_only_policy_lists_exactly_the_spec_inspecting_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _policy(tmp_path, [{"level": "Metadata"}])
    findings = analyse(Policy.load(policy), [RULES_DIR])
    blind = {Path(f.path).name for f in findings if f.status == "blind"}
    # Still able to fire: the legacy token rule also recognises the controller's Metadata-level
    # update; the CSR rules read the body only in a filter, which without it lets more through.
    still_fire = {
        "legacy_serviceaccount_token_secret_created.yml",
        "csr_created_for_client_certificate.yml",
        "csr_approved.yml",
    }
    expected = {p.name for p in K8S_RULES if _reads_request_body(p)} - still_fire
    assert blind == expected
    assert {
        "privileged_container.yml",
        "hostpath_root_filesystem_mount.yml",
        "miner_image_in_workload.yml",
    } <= blind
    assert run_coverage(str(policy), [str(RULES_DIR)]) == 1
    assert "CANNOT FIRE: Privileged Container In A Pod Or Workload Spec" in capsys.readouterr().out


def test_policy_dropping_secrets_blinds_the_secret_rules(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        [
            {"level": "None", "resources": [{"group": "", "resources": ["secrets"]}]},
            {"level": "RequestResponse"},
        ],
    )
    findings = analyse(Policy.load(policy), [RULES_DIR])
    assert _status(findings, "secrets_listed_cluster_wide.yml") == "blind"
    assert _status(findings, "secrets_accessed_by_node_identity.yml") == "blind"
    assert _status(findings, "pod_exec_or_attach.yml") == "ok"


def test_policy_recording_some_targets_too_low_is_partly_blind(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        [
            {"level": "RequestResponse", "resources": [{"group": "", "resources": ["pods"]}]},
            {"level": "Metadata"},
        ],
    )
    findings = analyse(Policy.load(policy), [RULES_DIR])
    assert _status(findings, "privileged_container.yml") == "partial"


def test_omitting_the_response_stages_blinds_everything(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, [{"level": "RequestResponse"}], omitStages=["ResponseStarted", "ResponseComplete"]
    )
    findings = analyse(Policy.load(policy), [RULES_DIR])
    assert {f.status for f in findings if f.status != "not-governed"} == {"blind"}


def test_cloud_rules_are_not_governed_by_the_policy(tmp_path: Path) -> None:
    findings = analyse(Policy.load(_policy(tmp_path, [])), [RULES_DIR])
    assert _status(findings, "eks_cluster_deleted.yml") == "not-governed"
    assert _status(findings, "gke_cluster_deleted.yml") == "not-governed"


def test_policy_rules_match_subresource_wildcards_as_the_api_server_does(tmp_path: Path) -> None:
    policy = Policy.load(
        _policy(
            tmp_path,
            [
                {"level": "None", "resources": [{"group": "", "resources": ["*/exec"]}]},
                {"level": "Request", "resources": [{"group": "", "resources": ["pods/*"]}]},
                {"level": "Metadata", "nonResourceURLs": ["/api*"]},
            ],
        )
    )
    who = ("u", ("system:authenticated",))
    assert policy.level_of(Request(*who, "create", "pods", "exec", namespace="a"))[0] == 0
    assert policy.level_of(Request(*who, "create", "pods", namespace="a"))[0] == 2
    assert policy.level_of(Request(*who, "get", None, path="/apis/apps"))[0] == 1
    assert policy.level_of(Request(*who, "get", "secrets", namespace="a")) == (0, None)


def test_not_a_policy_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("kind: ConfigMap\n")
    with pytest.raises(PolicyError, match=str(path)):
        Policy.load(path)


def test_coverage_command_exits_2_on_unreadable_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_coverage(str(tmp_path / "missing.yaml"), [str(RULES_DIR)]) == 2
    assert "missing.yaml" in capsys.readouterr().out
