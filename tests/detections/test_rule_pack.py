"""The shipped rule pack as a whole: metadata every rule must carry, tags checked against shipped
framework data, ids that stay put, and sigma-cli's own validators."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesigma.detections import attack, frameworks
from kubesigma.detections.rule_tests import TESTS_DIR
from support.paths import SHIPPED_RULES

RULES_DIR = SHIPPED_RULES
RULE_FILES = sorted(RULES_DIR.rglob("*.yml"))
FOLDERS = {
    ("kubernetes", "audit"): "kubernetes/audit",
    ("gcp", "gcp.audit"): "gcp/audit",
    ("aws", "cloudtrail"): "aws/cloudtrail",
}
# Ids other rules (the streaming correlation rules) and deployments refer to: they must not change.
PINNED: dict[str, tuple[str, str | None]] = {
    "secrets_listed_cluster_wide.yml": (
        "9b6c7599-a704-4916-ba1a-67e92b4a84a0",
        "k8s_secrets_listed_cluster_wide",
    ),
    "secrets_access_denied.yml": ("6aab10a5-b77f-4f47-8084-ae5dbb33a9de", "k8s_secret_access_denied"),
    "secrets_accessed_with_unusual_user_agent.yml": (
        "c59083be-7358-4446-8698-e4ddce3e98a7",
        "k8s_secrets_unusual_user_agent",
    ),
    "anonymous_request_denied.yml": ("2aee7041-fe8b-4f19-9610-e1fcf92cf280", "k8s_anonymous_request_denied"),
    "anonymous_request_allowed.yml": (
        "88fe4155-a53f-4509-a276-290e88c1f38f",
        "k8s_anonymous_request_allowed",
    ),
    "pod_exec_or_attach.yml": ("a61a4cb5-9f7f-4a74-a4a0-86f2e023e530", "k8s_pod_exec_or_attach"),
    "privileged_container.yml": ("5b17c9f4-6238-464e-9ab7-76c927c66b3e", None),
    "miner_image_in_workload.yml": ("42abf229-e84d-4985-a68d-47e75c867348", None),
}
# Plain activity: creating ordinary objects. Analysts must not get these as high.
PLAIN_ACTIVITY = {
    "daemonset_created.yml",
    "cronjob_created_or_modified.yml",
    "gke_cluster_created.yml",
    "eks_cluster_created.yml",
    "eks_access_entry_created.yml",
    "service_exposed_nodeport_or_loadbalancer.yml",
    "pod_portforward.yml",
}


def _load(path: Path) -> dict[str, Any]:
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert len(docs) == 1, f"{path}: one rule per file"
    return docs[0]


RULES = {p: _load(p) for p in RULE_FILES}


def test_pack_has_at_least_forty_rules() -> None:
    assert len(RULES) >= 40


def test_rule_ids_are_unique_uuids() -> None:
    ids = [r["id"] for r in RULES.values()]
    assert len(ids) == len(set(ids))
    for rid in ids:
        assert str(uuid.UUID(rid)) == rid


def test_rule_file_stems_are_unique_because_tests_are_named_after_them() -> None:
    stems = [p.stem for p in RULE_FILES]
    assert len(stems) == len(set(stems))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_referenced_rule_ids_and_names_stay_stable(name: str) -> None:
    (path,) = [p for p in RULE_FILES if p.name == name]
    rid, sigma_name = PINNED[name]
    assert RULES[path]["id"] == rid
    assert RULES[path].get("name") == sigma_name


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_carries_the_metadata_analysts_need(path: Path) -> None:
    rule = RULES[path]
    for key in (
        "title",
        "id",
        "status",
        "description",
        "references",
        "author",
        "date",
        "tags",
        "falsepositives",
        "level",
    ):
        assert rule.get(key), f"{path.name}: missing {key}"
    assert rule["author"] == "kubesigma"
    assert rule["level"] in {"informational", "low", "medium", "high", "critical"}
    assert all(re.match(r"^https://", r) for r in rule["references"])


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_lives_in_the_folder_of_its_logsource(path: Path) -> None:
    ls = RULES[path]["logsource"]
    folder = FOLDERS[(ls.get("product"), ls.get("service"))]
    assert path.parent.relative_to(RULES_DIR).as_posix() == folder


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_attack_tags_are_known_techniques_with_their_tactics(path: Path) -> None:
    assert attack.check_tags(RULES[path]["tags"]) == []


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_is_mapped_to_threat_matrix_and_owasp(path: Path) -> None:
    assert frameworks.check_tags(RULES[path]["tags"]) == []


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_has_a_test_file(path: Path) -> None:
    assert (TESTS_DIR / f"{path.stem}.yml").is_file()


@pytest.mark.parametrize("name", sorted(PLAIN_ACTIVITY))
def test_plain_activity_is_never_high(name: str) -> None:
    (path,) = [p for p in RULE_FILES if p.name == name]
    assert RULES[path]["level"] in {"informational", "low"}


def test_every_expand_placeholder_has_a_list_file() -> None:
    from kubesigma.detections.lists import LISTS_DIR, load_value_lists

    lists = load_value_lists([LISTS_DIR])
    for path in RULE_FILES:
        for name in re.findall(r"\|expand: '%([A-Za-z0-9_]+)%'", path.read_text(encoding="utf-8")):
            assert lists.get(name), f"{path.name}: list {name} missing or empty"


def test_check_tags_flags_unknown_technique_and_missing_tactic() -> None:
    problems = attack.check_tags(["attack.t9999", "attack.t1609", "attack.impact"])
    assert any("T9999" in p for p in problems)
    assert any("T1609" in p and "execution" in p for p in problems)


def test_check_tags_flags_unknown_framework_ids() -> None:
    problems = frameworks.check_tags(["mtmk.ms-ta9999", "owasp.k8s.k11"])
    assert any("MS-TA9999" in p for p in problems) and any("K11" in p for p in problems)


def test_sigma_cli_check_reports_no_error_over_the_pack() -> None:
    """sigma-cli's own validators; its ATT&CK tag validators download MITRE data, so they are excluded
    (tags are checked against detections/attack.py above)."""
    sigma = shutil.which("sigma") or str(Path(sys.executable).with_name("sigma"))
    proc = subprocess.run(
        [sigma, "check", "--exclude", "attacktag", "--exclude", "d3_fendtag", str(RULES_DIR)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Found 0 errors, 0 condition errors" in out, out


def test_shipped_rules_load_in_the_engine_without_refusals() -> None:
    from kubesigma.detections.engine import RuleSet

    ruleset = RuleSet.load([RULES_DIR])
    assert len(ruleset.rules) == len(RULES)
