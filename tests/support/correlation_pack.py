"""Small real Sigma rule files for the correlation tests: two base rules and correlations over them."""

from __future__ import annotations

from pathlib import Path

from kubesigma.detections.correlation import CorrelationPlan, compile_correlations
from kubesigma.detections.engine import RuleSet

SECRET_READ = "0b3f6d2a-9f64-4a57-9d55-2f7d1e1c0a01"
EXEC = "0b3f6d2a-9f64-4a57-9d55-2f7d1e1c0a02"
BINDING = "0b3f6d2a-9f64-4a57-9d55-2f7d1e1c0a03"

BASE = f"""\
title: Secret Read
id: {SECRET_READ}
name: secret_read
status: test
logsource:
    product: kubernetes
    service: audit
detection:
    selection:
        verb: [get, list]
        objectRef.resource: secrets
    condition: selection
level: low
---
title: Pod Exec
id: {EXEC}
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
---
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


def correlation(
    body: str, *, title: str = "Test Correlation", cid: str = "c0ffee00-0000-4000-8000-000000000001"
) -> str:
    return f"title: {title}\nid: {cid}\nstatus: test\ncorrelation:\n{body}level: high\n"


def load(tmp_path: Path, *correlations: str) -> tuple[RuleSet, CorrelationPlan]:
    (tmp_path / "base.yml").write_text(BASE)
    (tmp_path / "correlations.yml").write_text("\n---\n".join(correlations))
    ruleset = RuleSet.load([tmp_path])
    return ruleset, compile_correlations(ruleset)
