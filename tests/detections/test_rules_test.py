"""`kubesigma rules test`: every shipped rule's cases pass in every format, and a miss or a false hit
fails the run naming the rule and the case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubesigma.detections import rule_tests
from kubesigma.detections.rule_tests import RULES_DIR, TESTS_DIR, CaseFileError, load_cases, run_tests
from kubesigma.pipeline.commands.rules_test import run_test

EXEC_RULE = RULES_DIR / "kubernetes" / "audit" / "pod_exec_or_attach.yml"
EKS_RULE = RULES_DIR / "aws" / "cloudtrail" / "eks_cluster_deleted.yml"


@pytest.fixture(scope="module")
def shipped_outcome() -> rule_tests.Outcome:
    return run_tests([RULES_DIR])


def test_every_shipped_rule_passes_its_cases(shipped_outcome: rule_tests.Outcome) -> None:
    assert shipped_outcome.failures == []


def test_every_rule_was_exercised(shipped_outcome: rule_tests.Outcome) -> None:
    assert shipped_outcome.rules == len(list(RULES_DIR.rglob("*.yml")))
    assert shipped_outcome.cases >= 2 * shipped_outcome.rules


def test_kubernetes_cases_are_delivered_in_three_formats_and_refused_as_well() -> None:
    """Native, GKE LogEntry, EKS CloudWatch; a rule about something done also sees each of its
    `match` cases refused by the authorizer and by admission, and must stay quiet on those."""
    outcome = run_tests([EXEC_RULE])
    cases = load_cases(TESTS_DIR / "pod_exec_or_attach.yml")
    matches = [c for c in cases if c.expect == "match"]
    assert outcome.failures == []
    # each case in 3 formats; each match also refused twice (3 formats) and as a dry run (native, EKS)
    assert outcome.deliveries == 3 * (len(cases) + 2 * len(matches)) + 2 * len(matches)


def test_a_rule_that_fires_on_refused_requests_fails_its_refused_cases(tmp_path: Path, monkeypatch) -> None:
    """The refused copies catch a rule that alerts whatever the outcome (the per-event check dropped)."""
    from kubesigma.detections.engine import routing

    monkeypatch.setattr(routing, "_on_success", lambda match, succeeded: match)
    outcome = run_tests([EXEC_RULE])
    assert outcome.failures
    assert all("FALSE HIT" in f and ("refused by" in f or "dry run" in f) for f in outcome.failures)
    assert any("refused by admission' [gke]" in f for f in outcome.failures)


def test_cloudtrail_cases_are_delivered_as_record_file_and_eventbridge_event() -> None:
    outcome = run_tests([EKS_RULE])
    cases = load_cases(TESTS_DIR / "eks_cluster_deleted.yml")
    assert outcome.failures == [] and outcome.deliveries == 3 * len(cases)


def _write(tmp_path: Path, name: str, data: object) -> Path:
    tests = tmp_path / "tests"
    tests.mkdir(exist_ok=True)
    path = tests / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return tests


def test_a_miss_fails_naming_rule_and_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = yaml.safe_load((TESTS_DIR / "pod_exec_or_attach.yml").read_text())
    tests = _write(
        tmp_path,
        "pod_exec_or_attach.yml",
        {
            "match": [{"name": "logs are not exec", "event": original["no_match"][0]["event"]}],
            "no_match": original["no_match"],
        },
    )
    outcome = rule_tests.run_tests([EXEC_RULE], tests)
    assert any(
        f.startswith("MISS") and "Exec Or Attach Into A Pod Container" in f and "logs are not exec" in f
        for f in outcome.failures
    )


def test_a_false_hit_fails_naming_rule_and_case(tmp_path: Path) -> None:
    original = yaml.safe_load((TESTS_DIR / "pod_exec_or_attach.yml").read_text())
    tests = _write(
        tmp_path,
        "pod_exec_or_attach.yml",
        {
            "match": original["match"],
            "no_match": [{"name": "an exec after all", "event": original["match"][0]["event"]}],
        },
    )
    outcome = rule_tests.run_tests([EXEC_RULE], tests)
    assert any(f.startswith("FALSE HIT") and "an exec after all" in f for f in outcome.failures)


def test_run_test_exits_0_when_all_cases_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_test([str(EXEC_RULE)]) == 0
    assert "0 failures, passed" in capsys.readouterr().out


def test_run_test_exits_1_on_a_miss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = _write(
        tmp_path,
        "pod_exec_or_attach.yml",
        {
            "match": [{"name": "nothing", "event": {"verb": "get"}}],
            "no_match": [{"name": "n", "event": {"verb": "get"}}],
        },
    )
    assert run_test([str(EXEC_RULE)], tests) == 1
    assert "MISS" in capsys.readouterr().out


def test_rule_without_a_test_file_fails(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    outcome = rule_tests.run_tests([EXEC_RULE], tmp_path / "tests")
    assert any("has no test file" in f for f in outcome.failures)


def test_test_file_needs_both_positive_and_negative_cases(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.yml", {"match": [{"name": "a", "event": {}}]}) / "x.yml"
    with pytest.raises(CaseFileError, match="no_match"):
        load_cases(path)


def test_leaving_formats_out_needs_a_reason(tmp_path: Path) -> None:
    case = {"name": "a", "event": {}, "formats": ["native"]}
    path = _write(tmp_path, "x.yml", {"match": [case], "no_match": [{"name": "b", "event": {}}]}) / "x.yml"
    with pytest.raises(CaseFileError, match="why"):
        load_cases(path)


def test_completed_audit_event_keeps_case_fields_and_fills_the_envelope() -> None:
    event = rule_tests.complete_audit_event(
        {"verb": "create", "objectRef": {"resource": "pods", "namespace": "shop", "subresource": "exec"}}, "k"
    )
    assert event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1"
    assert event["requestURI"] == "/api/v1/namespaces/shop/pods/exec"
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
