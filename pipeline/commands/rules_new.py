"""`kubesigma rules new TITLE [--dir DIR]`: a rule file and its test-case file in the shipped layout
(`DIR/rules/kubernetes/audit/<name>.yml`, `DIR/tests/<name>.yml`), with a fresh id, the logsource and
field names kubesigma maps, tags in the frameworks the pack uses, and cases that pass as written."""

from __future__ import annotations

import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import yaml

from kubesigma.detections.rule_tests import RULES_DIR
from kubesigma.pipeline.options import OptionError

# The shipped pack's folder: detections/ holds rules/ and tests/.
DEFAULT_DIR = RULES_DIR.parent

RULE = """\
{title}
id: {id}
name: {name}
status: experimental
description: |
    TODO: what happened, why it matters, and what an attacker gains. The example below alerts when a
    ConfigMap is deleted by an identity that is not a Kubernetes component: replace it.
references:
    - https://attack.mitre.org/techniques/T1485/
author: {author}
date: {date}
tags:
    - attack.impact
    - attack.t1485
    - mtmk.ms-ta9038
    - owasp.k8s.k03
logsource:
    product: kubernetes
    service: audit
detection:
    selection:
        verb: delete
        objectRef.resource: configmaps
    filter_components:
        user.username|startswith: 'system:'
    condition: selection and not filter_components
falsepositives:
    - TODO: who does this legitimately.
level: medium
"""

CASES = """\
# Test cases of {file}: every `match` event must raise the rule, no `no_match` event may.
# Events are audit Events; what a real record always has (timestamps, ids, stage, a 2xx
# responseStatus) is filled in, and each is tried as GKE and EKS deliver it too.
match:
  - name: a person deletes a ConfigMap
    event:
      verb: delete
      user: {{username: alice@example.com, groups: ['system:authenticated']}}
      objectRef: {{resource: configmaps, namespace: shop, name: app-settings, apiVersion: v1}}
no_match:
  - name: a controller deletes a ConfigMap
    event:
      verb: delete
      user: {{username: 'system:serviceaccount:kube-system:generic-garbage-collector'}}
      objectRef: {{resource: configmaps, namespace: shop, name: app-settings, apiVersion: v1}}
  - name: a person reads a ConfigMap
    event:
      verb: get
      user: {{username: alice@example.com, groups: ['system:authenticated']}}
      objectRef: {{resource: configmaps, namespace: shop, name: app-settings, apiVersion: v1}}
"""


def file_name(title: str) -> str:
    """`Exec Into A Pod` -> `exec_into_a_pod`."""
    name = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
    if not name:
        raise OptionError(f"title {title!r} has no letters or digits to name the rule file after")
    return name


def run_new(title: str, folder: str | None = None, out: TextIO = sys.stdout) -> int:
    """Write the two files; 0, or a user error (exit 2) when either exists already."""
    base = Path(folder) if folder else DEFAULT_DIR
    name = file_name(title)
    rule = base / "rules" / "kubernetes" / "audit" / f"{name}.yml"
    cases = base / "tests" / f"{name}.yml"
    for path in (rule, cases):
        if path.exists():
            raise OptionError(f"{path} exists already: choose another title")
    rule.parent.mkdir(parents=True, exist_ok=True)
    cases.parent.mkdir(parents=True, exist_ok=True)
    rule.write_text(
        RULE.format(
            title=yaml.safe_dump({"title": " ".join(title.split())}, allow_unicode=True, width=1000).strip(),
            id=uuid.uuid4(),
            name=f"k8s_{name}",
            author="TODO",
            date=datetime.now(UTC).date().isoformat(),
        ),
        encoding="utf-8",
    )
    cases.write_text(CASES.format(file=rule.name), encoding="utf-8")
    out.write(f"wrote {rule}\nwrote {cases}\n")
    out.write(f"next: kubesigma rules check {rule} && kubesigma rules test {rule}\n")
    return 0
