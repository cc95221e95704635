"""The one correlation rule pack of the tests: three small base rules, named for what they match, and
Sigma correlation rules over them, written as files and loaded the way kubesigma loads a user's rules.

Tests that need a correlation of their own write its body and wrap it with `correlation`; `load` puts
it next to the base rules. The shipped correlation rules are tested on the shipped pack instead.
"""

from __future__ import annotations

from pathlib import Path

from kubesigma.detections.correlation import CorrelationPlan, compile_correlations
from kubesigma.detections.engine import RuleSet

SECRET_ACCESS = "0b3f6d2a-9f64-4a57-9d55-2f7d1e1c0a01"
POD_EXEC = "0b3f6d2a-9f64-4a57-9d55-2f7d1e1c0a02"
BINDING = "0b3f6d2a-9f64-4a57-9d55-2f7d1e1c0a03"
ENUMERATION = "0b3f6d2a-9f64-4a57-9d55-2f7d1e1c0a10"

SECRET_ACCESS_RULE = f"""\
title: Secret Access
id: {SECRET_ACCESS}
name: secret_access
status: test
description: Any request on a Secret.
logsource:
    product: kubernetes
    service: audit
detection:
    selection:
        objectRef.resource: secrets
    condition: selection
level: medium
tags:
    - attack.credential-access
    - attack.t1552.007
"""

POD_EXEC_RULE = f"""\
title: Pod Exec
id: {POD_EXEC}
name: pod_exec
status: test
logsource:
    product: kubernetes
    service: audit
detection:
    selection:
        verb: [create, get]
        objectRef.resource: pods
        objectRef.subresource: exec
    condition: selection
level: medium
"""

BINDING_RULE = f"""\
title: Binding Created
id: {BINDING}
name: binding_created
status: test
logsource:
    product: kubernetes
    service: audit
detection:
    selection:
        verb: create
        objectRef.resource: [rolebindings, clusterrolebindings]
    condition: selection
level: medium
"""

BASE_RULES = (SECRET_ACCESS_RULE, POD_EXEC_RULE, BINDING_RULE)


def correlation(
    body: str,
    *,
    title: str = "Test Correlation",
    cid: str = "c0ffee00-0000-4000-8000-000000000001",
    level: str = "high",
) -> str:
    """A correlation rule document around `body` (the indented members of `correlation:`)."""
    return f"title: {title}\nid: {cid}\nstatus: test\ncorrelation:\n{body}level: {level}\n"


# Ten distinct secrets touched by one identity within five minutes.
ENUMERATION_BODY = """\
    type: value_count
    rules: secret_access
    group-by: [user.username]
    timespan: 5m
    condition:
        gte: 10
        field: objectRef.name
"""
SECRET_ENUMERATION = correlation(ENUMERATION_BODY, title="Secret Enumeration", cid=ENUMERATION)


def load(tmp_path: Path, *correlations: str) -> tuple[RuleSet, CorrelationPlan]:
    """The base rules (base.yml) and these correlation rules (correlations.yml), loaded and compiled."""
    (tmp_path / "base.yml").write_text("---\n".join(BASE_RULES))
    if correlations:
        (tmp_path / "correlations.yml").write_text("\n---\n".join(correlations))
    ruleset = RuleSet.load([tmp_path])
    return ruleset, compile_correlations(ruleset)
