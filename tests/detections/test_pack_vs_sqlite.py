"""The shipped pack means the same to an independent Sigma implementation: pySigma's SQLite backend
(pysigma-backend-sqlite 2.0.0) over flattened events agrees with kubesigma's engine on every
(rule, event) pair SQL can express.

SQLite sees one flat row per event (nested keys joined with dots, lists stored as JSON text), so pairs
where a rule field runs through a list or stops on an object are left out, as are rules the backend
cannot convert (keyword search). Booleans are stored as the words `true`/`false`, as Sigma
compares them. Events: every test case of the pack (native Events), the demo cluster's log and
Falco's traces.
"""

from __future__ import annotations

import json
import re
import sqlite3
from functools import cache
from typing import Any

import pytest
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.connectors.simulated_cluster import generate
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.engine.fields import resolve, split_path
from kubesigma.detections.mapping import evaluation_pipeline
from kubesigma.detections.rule_tests import TESTS_DIR, complete_audit_event, load_cases
from support.paths import FALCO_TRACES, SHIPPED_RULES

K8S_RULES = sorted((SHIPPED_RULES / "kubernetes" / "audit").glob("*.yml"))


def _flatten(doc: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out)
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = value
    return out


@cache
def _queries() -> tuple[dict[str, str], tuple[str, ...]]:
    queries: dict[str, str] = {}
    refused: list[str] = []
    for path in K8S_RULES:
        # processing pipelines mutate rules: a fresh backend and a freshly parsed rule per conversion
        (rule,) = SigmaCollection.load_ruleset([path]).rules
        backend = sqliteBackend(evaluation_pipeline(), collate_nocase=True)
        try:
            (query,) = backend.convert(SigmaCollection([rule]))
        except SigmaError:
            refused.append(path.stem)
            continue
        queries[str(rule.id)] = query.replace("SELECT * FROM logs", "SELECT rowid FROM logs", 1)
    return queries, tuple(refused)


def _sqlite_hits(docs: list[dict[str, Any]]) -> set[tuple[str, int]]:
    db = sqlite3.connect(":memory:")
    db.create_function("REGEXP", 2, lambda p, v: v is not None and re.search(p, str(v)) is not None)
    rows = [_flatten(d) for d in docs]
    columns = sorted({c for r in rows for c in r})
    db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in columns) + ")")
    for i, row in enumerate(rows, start=1):
        names = ", ".join(["rowid", *(f'"{c}"' for c in row)])
        db.execute(
            f"INSERT INTO logs ({names}) VALUES ({', '.join('?' * (len(row) + 1))})", [i, *row.values()]
        )
    found: set[tuple[str, int]] = set()
    for rule_id, query in _queries()[0].items():
        while True:
            try:
                found.update((rule_id, rowid - 1) for (rowid,) in db.execute(query))
                break
            except sqlite3.OperationalError as e:  # a field no event has: an empty column
                missing = re.match(r"no such column: (.+)$", str(e))
                if not missing:
                    raise
                db.execute(f'ALTER TABLE logs ADD COLUMN "{missing.group(1).strip("`")}" TEXT COLLATE NOCASE')
    return found


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


def _comparable(fields: set[str], doc: dict[str, Any]) -> bool:
    for f in fields:
        x = resolve(doc, split_path(f))
        if x.__class__ is tuple or x.__class__ is dict:
            return False
    return True


def test_most_of_the_pack_converts_to_sql() -> None:
    queries, refused = _queries()
    assert len(queries) >= len(K8S_RULES) - 3, refused


def test_engine_and_sqlite_agree_on_the_pack() -> None:
    from kubesigma.detections.engine.analysis import field_names
    from kubesigma.detections.engine.ir import KEYWORD

    ruleset = RuleSet.load(K8S_RULES)
    fields = {c.info.id: field_names(c.ir) - {KEYWORD} for c in ruleset._compiled}
    docs = _events()
    queries, _ = _queries()
    keep = {(rid, i) for rid in queries for i, d in enumerate(docs) if _comparable(fields[rid], d)}
    mine = {(r.id, i) for i, d in enumerate(docs) for r in ruleset.match_document(KUBERNETES_AUDIT, d)} & keep
    theirs = _sqlite_hits(docs) & keep
    titles = {r.id: r.title for r in ruleset.rules}
    only_mine = sorted({titles[r] for r, _ in mine - theirs})
    only_theirs = sorted({titles[r] for r, _ in theirs - mine})
    assert (only_mine, only_theirs) == ([], []), (len(mine), len(theirs))
    if len(mine) < 50:
        pytest.fail(f"too few comparable hits to mean anything: {len(mine)}")
