"""`kubesigma rules check [PATH ...]`: load Sigma rules the way the pipeline will, and say per rule why not.

Exit status 1 only when a rule fails to load or compile; warnings (a field no event carries, a GKE
method name that cannot exist) are printed and do not fail the check.
"""

from __future__ import annotations

import sys
from typing import TextIO

from kubesigma.detections.config import EngineConfig, EngineConfigError
from kubesigma.detections.engine import RuleSet
from kubesigma.pipeline.options import DEFAULT_CORRELATION_RULES, DEFAULT_RULES

# What `kubesigma run` loads when --rules is not given: the pack and the shipped correlation rules.
DEFAULT_PATHS = [str(DEFAULT_RULES), str(DEFAULT_CORRELATION_RULES)]


def run_check(paths: list[str], config_path: str | None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        config = EngineConfig.from_file(config_path) if config_path else EngineConfig()
    except EngineConfigError as e:
        print(f"error: {e}", file=out)
        return 1
    reports = RuleSet.check(paths or DEFAULT_PATHS, config)
    failed = warned = loaded = 0
    for report in sorted(reports, key=lambda r: (r.path, r.line or 0)):
        where = f"{report.path}:{report.line}" if report.line else report.path
        who = f"{report.rule_id or '-'}  {report.title or ''}".rstrip()
        if report.ok:
            loaded += 1
            label = "loaded" if report.kind == "detection" else f"loaded ({report.kind})"
            print(f"{where}\n  {who}\n  {label}", file=out)
        else:
            failed += 1
            print(f"{where}\n  {who}\n  REFUSED: {report.error}{_hint(report.error)}", file=out)
        for w in report.warnings:
            warned += 1
            print(f"  warning: {w}", file=out)
    print(f"\n{loaded} loaded, {failed} refused, {warned} warning(s)", file=out)
    return 1 if failed else 0


def _hint(error: str | None) -> str:
    # A correlation names its input rules; they are found only among the files checked together.
    if error and "not found in rule collection" in error:
        return " (check it together with the file that defines that rule, as `kubesigma run` loads them)"
    return ""
