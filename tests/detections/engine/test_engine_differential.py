"""Differential test: kubesigma's (rule, event) matches equal pySigma's SQLite backend's.

The SQLite side works the way Zircolite does: every event flattened into one row of one table
(nested keys joined with dots, columns `TEXT COLLATE NOCASE`, a Python REGEXP function), each rule
converted by pysigma-backend-sqlite with the same evaluation pipeline and run as a query. Compared
where SQL can express the same thing: pairs where a rule field runs through a list or lands on an
object are left out (a flat row has no "any element"), as are rules the backend refuses (keywords).
Known, documented differences kept out of the events: SQLite compares numbers in a TEXT column as
text (status codes are all three digits here) and folds case for ASCII only (ASCII values here).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.engine.analysis import field_names
from kubesigma.detections.engine.fields import resolve, split_path
from kubesigma.detections.engine.ir import KEYWORD
from kubesigma.detections.mapping import evaluation_pipeline
from support.event_strategies import EVENTS

HERE = Path(__file__).resolve().parent


def flatten(doc: dict, prefix: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flatten(value, name + ".", out)
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


class SqliteOracle:
    def __init__(self, rule_paths: list[Path]):
        self.queries: dict[str, str] = {}
        self.unsupported: list[str] = []
        for path in rule_paths:
            for rule in SigmaCollection.load_ruleset([path]).rules:
                # pipelines mutate rules: a fresh backend and a freshly parsed rule per conversion
                backend = sqliteBackend(evaluation_pipeline(), collate_nocase=True)
                try:
                    fresh = next(r for r in SigmaCollection.load_ruleset([path]).rules if r.id == rule.id)
                    (query,) = backend.convert(SigmaCollection([fresh]))
                except SigmaError:
                    self.unsupported.append(rule.title)
                    continue
                self.queries[str(rule.id)] = query.replace("SELECT * FROM logs", "SELECT rowid FROM logs", 1)

    def run(self, docs: list[dict]) -> set[tuple[str, int]]:
        db = sqlite3.connect(":memory:")
        db.create_function("REGEXP", 2, lambda p, v: v is not None and re.search(p, str(v)) is not None)
        rows = [flatten(d) for d in docs]
        columns = sorted({c for r in rows for c in r})
        cols_sql = ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in columns) or '"_" TEXT'
        db.execute(f"CREATE TABLE logs ({cols_sql})")
        for i, row in enumerate(rows, start=1):
            names = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            db.execute(
                f"INSERT INTO logs (rowid{', ' if row else ''}{names}) VALUES (?{', ' if row else ''}{marks})",
                [i, *row.values()],
            )
        found = set()
        for rule_id, query in self.queries.items():
            while True:
                try:
                    found.update((rule_id, rowid - 1) for (rowid,) in db.execute(query))
                    break
                except sqlite3.OperationalError as e:
                    missing = re.match(r"no such column: (.+)$", str(e))
                    if not missing:
                        raise
                    db.execute(
                        f'ALTER TABLE logs ADD COLUMN "{missing.group(1).strip("`")}" TEXT COLLATE NOCASE'
                    )
        return found


def comparable(fields: set[str], doc: dict) -> bool:
    for f in fields:
        x = resolve(doc, split_path(f))
        if x.__class__ is tuple or x.__class__ is dict:
            return False
    return True


class Harness:
    def __init__(self, rule_paths: list[Path]):
        self.engine = RuleSet.load(rule_paths)
        self.oracle = SqliteOracle(rule_paths)
        self.fields = {c.info.id: field_names(c.ir) - {KEYWORD} for c in self.engine._compiled}

    def compare(self, docs: list[dict]) -> tuple[set, set, int]:
        mine = {
            (r.id, i) for i, d in enumerate(docs) for r in self.engine.match_document(KUBERNETES_AUDIT, d)
        }
        theirs = self.oracle.run(docs)
        keep = {
            (rid, i)
            for rid in self.oracle.queries
            for i, d in enumerate(docs)
            if comparable(self.fields[rid], d)
        }
        return mine & keep, theirs & keep, len(keep)


@pytest.fixture(scope="module")
def sigmahq_harness(datasets) -> Harness:
    return Harness([datasets / "sigmahq-rules" / "rules" / "application" / "kubernetes"])


@pytest.fixture(scope="module")
def construct_harness() -> Harness:
    return Harness([HERE / "differential" / "rules.yml"])


def dataset_events(datasets) -> list[dict]:
    docs = []
    for path in [
        *sorted((datasets / "falco-k8s-audit" / "traces").glob("*.json")),
        datasets / "format-samples" / "kubernetes-audit-mixed.jsonl",
    ]:
        for line in path.read_text().splitlines():
            if line.strip():
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("kind") == "Event":
                    docs.append(doc)
    return docs


def test_sigmahq_rules_agree_with_sqlite_on_the_datasets(sigmahq_harness, datasets):
    docs = dataset_events(datasets)
    mine, theirs, compared = sigmahq_harness.compare(docs)
    assert len(docs) >= 51 and compared > 500
    assert mine == theirs
    assert len(mine) >= 10


def test_construct_rules_agree_with_sqlite_on_the_datasets(construct_harness, datasets):
    assert construct_harness.oracle.unsupported == []
    mine, theirs, _ = construct_harness.compare(dataset_events(datasets))
    assert mine == theirs


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(docs=st.lists(EVENTS, min_size=1, max_size=40))
def test_generated_events_agree_with_sqlite(construct_harness, sigmahq_harness, docs):
    for harness in (construct_harness, sigmahq_harness):
        mine, theirs, _ = harness.compare(docs)
        assert mine == theirs


def test_the_comparison_can_fail(construct_harness):
    """Guard: a rule the engine is made to miss shows up as a difference."""
    doc = {
        "kind": "Event",
        "verb": "get",
        "userAgent": "kubectl/v1",
        "requestURI": "/x",
        "objectRef": {"resource": "pods"},
    }
    mine, theirs, _ = construct_harness.compare([doc])
    assert ("7e0d1a00-0000-4000-8000-000000000002", 0) in theirs
    assert mine - {("7e0d1a00-0000-4000-8000-000000000002", 0)} != theirs
