"""The shipped pack means the same to an independent Sigma implementation: pySigma's SQLite backend
(pysigma-backend-sqlite 2.0.0) over flattened events agrees with kubesigma's engine on every
(rule, event) pair SQL can express.

The SQLite side is the one oracle of the tests (support/sqlite_oracle.py): one flat row per event,
booleans stored as the words `true`/`false`, as Sigma compares them. Pairs where a rule field runs
through a list or stops on an object are left out, as are rules the backend cannot convert (keyword
search). Events: every test case of the pack (native Events), the demo cluster's log and Falco's traces.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubesigma.connectors.simulated_cluster import generate
from kubesigma.detections.mapping import evaluation_pipeline
from kubesigma.detections.rule_tests import TESTS_DIR, complete_audit_event, load_cases
from support.paths import FALCO_TRACES, SHIPPED_RULES
from support.sqlite_oracle import EngineVsSQLite

K8S_RULES = sorted((SHIPPED_RULES / "kubernetes" / "audit").glob("*.yml"))


@pytest.fixture(scope="module")
def pack() -> EngineVsSQLite:
    return EngineVsSQLite(K8S_RULES, evaluation_pipeline)


def _events() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(TESTS_DIR.glob("*.yml")):
        for case in load_cases(path):
            if "eventName" in case.event or "protoPayload" in case.event:
                continue
            docs.append(complete_audit_event(case.event, f"{path.stem}/{case.name}"))
    docs.extend(generate(3, 2000, attack_ratio=0.05))
    for trace in sorted(FALCO_TRACES.glob("*.json")):
        for line in trace.read_text().splitlines():
            doc = json.loads(line) if line.strip() else None
            if isinstance(doc, dict) and doc.get("kind") == "Event":
                docs.append(doc)
    return docs


def test_most_of_the_pack_converts_to_sql(pack: EngineVsSQLite) -> None:
    assert len(pack.oracle.rule_ids) >= len(K8S_RULES) - 3, pack.oracle.refused


def test_engine_and_sqlite_agree_on_the_pack(pack: EngineVsSQLite) -> None:
    mine, theirs, _ = pack.compare(_events())
    titles = {r.id: r.title for r in pack.engine.rules}
    only_mine = sorted({titles[r] for r, _ in mine - theirs})
    only_theirs = sorted({titles[r] for r, _ in theirs - mine})
    assert (only_mine, only_theirs) == ([], []), (len(mine), len(theirs))
    if len(mine) < 50:
        pytest.fail(f"too few comparable hits to mean anything: {len(mine)}")
