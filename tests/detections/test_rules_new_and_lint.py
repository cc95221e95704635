"""`kubesigma rules new` writes a rule and its cases that check, test and lint clean; `kubesigma rules
lint` finds unmapped fields, rules a Policy blinds, rules without tests and tags outside the frameworks."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import yaml

from kubesigma.detections.policy_coverage import Policy
from kubesigma.pipeline.commands.rules_check import run_check
from kubesigma.pipeline.commands.rules_lint import lint, run_lint
from kubesigma.pipeline.commands.rules_new import file_name, run_new
from kubesigma.pipeline.commands.rules_test import run_test
from support.paths import REPO

TITLE = "ConfigMap Deleted By A Person: Audit"


def _new(folder: Path, title: str = TITLE) -> Path:
    assert run_new(title, str(folder), out=io.StringIO()) == 0
    return folder / "rules" / "kubernetes" / "audit" / f"{file_name(title)}.yml"


def test_a_new_rule_is_in_the_shipped_layout_and_checks_tests_and_lints_clean(tmp_path: Path) -> None:
    rule = _new(tmp_path)
    assert rule == tmp_path / "rules" / "kubernetes" / "audit" / "configmap_deleted_by_a_person_audit.yml"
    assert (tmp_path / "tests" / rule.name).is_file()
    text = yaml.safe_load(rule.read_text())
    assert text["title"] == TITLE and text["logsource"] == {"product": "kubernetes", "service": "audit"}
    assert run_check([str(tmp_path / "rules")], None) == 0
    assert run_test([str(tmp_path / "rules")]) == 0
    assert lint([str(tmp_path / "rules")]) == []


def test_each_new_rule_gets_a_fresh_id_and_an_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    first = yaml.safe_load(_new(tmp_path).read_text())["id"]
    second = yaml.safe_load(_new(tmp_path, "Another One").read_text())["id"]
    assert first != second
    done = subprocess.run(
        [sys.executable, "-m", "kubesigma.pipeline.cli", "rules", "new", TITLE, "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "exists already" in done.stderr and done.stderr.count("\n") == 1


def _bad_pack(folder: Path) -> Path:
    rule = _new(folder)
    text = yaml.safe_load(rule.read_text())
    text["detection"]["selection"]["spec.noSuchField"] = "x"
    text["tags"] = [*text["tags"], "cve.2024-1234", "attack.t9999"]
    rule.write_text(yaml.safe_dump(text, sort_keys=False))
    untested = rule.parent / "untested.yml"
    other = yaml.safe_load(rule.read_text())
    other.update(id="3a0d3f34-1b1c-4a4c-9d61-9f4d3c6f2b11", name="k8s_untested", title="Untested")
    del other["detection"]["selection"]["spec.noSuchField"]
    other["tags"] = other["tags"][:4]
    untested.write_text(yaml.safe_dump(other, sort_keys=False))
    return folder / "rules"


def test_lint_names_unmapped_fields_foreign_and_unknown_tags_and_missing_tests(tmp_path: Path) -> None:
    findings = lint([str(_bad_pack(tmp_path))])
    by_check = {(Path(f.path).name, f.check, f.message) for f in findings}
    assert (
        "configmap_deleted_by_a_person_audit.yml",
        "field",
        "field `spec.noSuchField` is carried by no kubernetes/audit event",
    ) in by_check
    messages = [m for _, c, m in by_check if c == "tags"]
    assert any("cve.2024-1234 is outside ATT&CK" in m for m in messages)
    assert any("T9999" in m for m in messages)
    assert {(n, c) for n, c, _ in by_check if c == "tests"} == {("untested.yml", "tests")}
    out = io.StringIO()
    assert run_lint([str(tmp_path / "rules")], out=out) == 1
    assert f"rules lint: {len(findings)} findings in 2 files" in out.getvalue()


def test_lint_names_rules_an_audit_policy_leaves_unable_to_fire(tmp_path: Path) -> None:
    _new(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [
                    {"level": "None", "resources": [{"group": "", "resources": ["configmaps"]}]},
                    {"level": "Metadata"},
                ],
            }
        )
    )
    findings = lint([str(tmp_path / "rules")], Policy.load(str(policy)))
    assert [(f.check, f.title) for f in findings] == [("policy", TITLE)]
    assert "cannot fire under the policy" in findings[0].message


def test_the_shipped_pack_lints_clean_under_the_documented_policy() -> None:
    out = io.StringIO()
    assert run_lint([], str(REPO / "docs" / "audit-policy.yaml"), out=out) == 0, out.getvalue()
