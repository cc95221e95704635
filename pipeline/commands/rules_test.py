"""`kubesigma rules test [PATH ...]`: replay every rule's test cases in every format it can see
(`kubesigma.detections.rule_tests`) and print what failed."""

from __future__ import annotations

from pathlib import Path

from kubesigma.detections.rule_tests import RULES_DIR, run_tests


def run_test(paths: list[str], tests_dir: Path | None = None) -> int:
    """`kubesigma rules test [PATH ...]`: 0 when every rule's cases pass in every format, else 1. Each
    rule's cases are in `tests_dir`, else next to its `rules/` folder (`<dir>/tests/<stem>.yml`)."""
    outcome = run_tests(paths or [str(RULES_DIR)], tests_dir)
    for failure in outcome.failures:
        print(failure)
    status = "FAILED" if outcome.failures else "passed"
    print(
        f"rules test: {outcome.rules} rules, {outcome.cases} cases, {outcome.deliveries} deliveries: "
        f"{len(outcome.failures)} failures, {status}"
    )
    return 1 if outcome.failures else 0
