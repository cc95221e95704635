"""`kubesigma rules coverage --policy FILE`: print the rules an audit Policy leaves blind or partly blind
(`kubesigma.detections.policy_coverage` works them out)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kubesigma.detections.policy_coverage import Policy, PolicyError, analyse
from kubesigma.detections.rule_tests import RULES_DIR


def run_coverage(policy_path: str, paths: Sequence[str] | None = None) -> int:
    """List the rules the Policy leaves unable to fire: 1 if there are any, 2 for an unusable Policy, else 0."""
    try:
        policy = Policy.load(policy_path)
        findings = analyse(policy, list(paths or [str(RULES_DIR)]))
    except PolicyError as e:
        print(f"error: {e}")
        return 2
    blind = [f for f in findings if f.status == "blind"]
    partial = [f for f in findings if f.status == "partial"]
    for label, group in (("CANNOT FIRE", blind), ("PARTLY BLIND", partial)):
        for f in group:
            print(f"{label}: {f.title} ({Path(f.path).name})")
            for reason in f.reasons[:6]:
                print(f"    {reason}")
            if len(f.reasons) > 6:
                print(f"    ... {len(f.reasons) - 6} more")
    governed = [f for f in findings if f.status != "not-governed"]
    print(
        f"rules coverage for {policy_path}: {len(governed)} Kubernetes audit rules, "
        f"{len(blind)} cannot fire, {len(partial)} partly blind; "
        f"{len(findings) - len(governed)} cloud control-plane rules do not depend on it"
    )
    return 1 if blind or partial else 0
