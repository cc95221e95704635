"""Differential test: kubesigma's (rule, event) matches equal pySigma's SQLite backend's.

The SQLite side is the one oracle of the tests (support/sqlite_oracle.py: Zircolite's flat table, its
boolean policy), each rule converted by pysigma-backend-sqlite with the same evaluation pipeline.
Compared where SQL can express the same thing: pairs where a rule field runs through a list or lands
on an object are left out (a flat row has no "any element"), as are rules the backend refuses
(keywords). Known, documented differences kept out of the events: SQLite compares numbers in a TEXT
column as text (status codes are all three digits here) and folds case for ASCII only (ASCII values
here).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesigma.detections.mapping import evaluation_pipeline
from support.event_strategies import EVENTS
from support.sqlite_oracle import EngineVsSQLite

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def sigmahq_harness(datasets) -> EngineVsSQLite:
    return EngineVsSQLite(
        [datasets / "sigmahq-rules" / "rules" / "application" / "kubernetes"], evaluation_pipeline
    )


@pytest.fixture(scope="module")
def construct_harness() -> EngineVsSQLite:
    return EngineVsSQLite([HERE / "differential" / "rules.yml"], evaluation_pipeline)


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
    assert construct_harness.oracle.refused == []
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
