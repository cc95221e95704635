"""`kubesigma rules lint [PATH ...] [--policy FILE]`: what `rules check` accepts but a reviewer would
not: fields no supported record format can fill (the field catalog), rules an audit Policy leaves unable
to fire, rules without test cases, tags outside ATT&CK, the OWASP Kubernetes Top 10 and Microsoft's
Threat Matrix for Kubernetes (and ids those frameworks do not have)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kubesigma.detections import attack, frameworks
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.policy_coverage import Policy, PolicyError, analyse
from kubesigma.detections.rule_tests import case_file_for
from kubesigma.pipeline.options import DEFAULT_CORRELATION_RULES, DEFAULT_RULES

# Tag namespaces of the frameworks the pack maps to: attack.*, owasp.k8s.*, mtmk.* (Threat Matrix).
TAG_NAMESPACES = ("attack.", frameworks.OWASP_PREFIX, frameworks.MTMK_PREFIX)


@dataclass(frozen=True)
class LintFinding:
    path: str
    title: str
    check: str  # field | policy | tests | tags
    message: str

    def __str__(self) -> str:
        return f"{self.path}: [{self.check}] {self.title}: {self.message}"


def lint(paths: Sequence[str], policy: Policy | None = None) -> list[LintFinding]:
    """Every finding on the rules under `paths`; raises RuleLoadError for rules that do not load."""
    ruleset = RuleSet.load(list(paths))
    findings = [
        LintFinding(report.path, report.title or "", "field", warning)
        for report in ruleset.reports
        for warning in report.warnings
    ]
    for info in (*ruleset.rules, *ruleset.correlation_infos):
        # Building blocks of correlations (generate: false) raise no alert of their own, so they carry
        # no tags; the correlation tests exercise them.
        if info.id in ruleset.correlation_only_ids:
            continue
        outside = [t for t in info.tags if not t.startswith(TAG_NAMESPACES)]
        problems = [
            f"tag {t} is outside ATT&CK, OWASP Kubernetes Top 10 and the Threat Matrix" for t in outside
        ]
        problems += attack.check_tags(info.tags) + frameworks.check_tags(info.tags)
        findings += [LintFinding(info.path, info.title, "tags", p) for p in problems]
        # Correlation rules have their own tests (tests/detections/correlation).
        if info.kind == "detection" and not case_file_for(info.path).is_file():
            findings.append(
                LintFinding(info.path, info.title, "tests", f"no test cases ({case_file_for(info.path)})")
            )
    if policy is not None:
        for finding in analyse(policy, list(paths)):
            if finding.status == "blind":
                why = finding.reasons[0] if finding.reasons else "nothing it reads is recorded"
                findings.append(
                    LintFinding(finding.path, finding.title, "policy", f"cannot fire under the policy: {why}")
                )
    return sorted(findings, key=lambda f: (f.path, f.check, f.message))


def run_lint(paths: Sequence[str] = (), policy_path: str | None = None, out: TextIO = sys.stdout) -> int:
    """0 when the rules lint clean, 1 with findings (one line each), 2 for rules or a Policy that do not
    load."""
    paths = list(paths) or [str(DEFAULT_RULES), str(DEFAULT_CORRELATION_RULES)]
    try:
        policy = Policy.load(policy_path) if policy_path else None
    except PolicyError as err:
        print(f"kubesigma: --policy {policy_path}: {err}", file=sys.stderr)
        return 2
    findings = lint(paths, policy)
    for finding in findings:
        out.write(f"{finding}\n")
    files = {f.path for f in findings}
    out.write(
        f"rules lint: {len(findings)} findings in {len(files)} files"
        f"{' (under ' + str(Path(policy_path).name) + ')' if policy_path else ''}\n"
    )
    return 1 if findings else 0
