"""The reference interpreter: a rule's condition tree evaluated node by node on one document, the value of
every node kept; and the compiled engine answering as it does on generated events."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.engine.interpret import Evaluation, evaluate, fires, trace
from kubesigma.detections.engine.ir import And, Not, Or
from kubesigma.detections.engine.modifiers import Leaf
from support.event_strategies import EVENTS
from support.sigma_rules import rule_doc, ruleset

EXEC = {
    "kind": "Event",
    "verb": "create",
    "user": {"username": "alice", "groups": ["system:authenticated", "devs"]},
    "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "kube-system"},
    "requestURI": "/api/v1/namespaces/kube-system/pods/web/exec?command=sh",
}


def _ir(tmp_path, detection):
    (rule,) = ruleset(tmp_path, rule_doc(detection))._compiled
    return rule.ir


def test_trace_keeps_the_value_of_every_node(tmp_path):
    ir = _ir(
        tmp_path,
        {
            "sel": {"objectRef.subresource": "exec", "verb": "create"},
            "filter": {"user.groups": "system:masters"},
            "condition": "sel and not filter",
        },
    )
    root = trace(ir, EXEC)
    assert isinstance(root.node, And) and root.value is True
    sel, negated = root.children
    assert isinstance(sel.node, And) and [c.value for c in sel.children] == [True, True]
    assert isinstance(negated.node, Not) and negated.value is True
    (filter_,) = negated.children
    assert isinstance(filter_.node, Leaf) and filter_.node.field == "user.groups" and filter_.value is False


def test_trace_shows_which_leaf_kept_a_rule_from_matching(tmp_path):
    ir = _ir(tmp_path, {"sel": {"objectRef.subresource": "exec", "verb": "delete"}, "condition": "sel"})
    root = trace(ir, EXEC)
    assert root.value is False
    assert [(c.node.field, c.value) for c in root.children] == [
        ("objectRef.subresource", True),
        ("verb", False),
    ]


def test_evaluate_equals_the_traced_root_value(tmp_path):
    ir = _ir(
        tmp_path,
        {"a": {"verb": ["get", "create"]}, "b": {"requestURI|contains": "exec"}, "condition": "a and b"},
    )
    for doc in (EXEC, {**EXEC, "verb": "list"}, {**EXEC, "requestURI": "/healthz"}, {}):
        assert evaluate(ir, doc) is trace(ir, doc).value


def test_value_lists_are_or_nodes_of_leaves(tmp_path):
    ir = _ir(tmp_path, {"sel": {"verb": ["get", "create", "delete"]}, "condition": "sel"})
    assert isinstance(ir, Or)
    assert [c.value for c in trace(ir, EXEC).children] == [False, True, False]


def test_keywords_search_every_string_and_key(tmp_path):
    ir = _ir(tmp_path, {"keywords": ["KUBE-SYSTEM", "subres*"], "condition": "keywords"})
    assert [c.value for c in trace(ir, EXEC).children] == [True, True]
    assert not evaluate(ir, {"verb": "get"})


def test_constants_evaluate_to_themselves():
    assert trace(True, EXEC) == Evaluation(True, True)
    assert evaluate(False, EXEC) is False


@pytest.fixture(scope="module")
def differential_rules(datasets) -> RuleSet:
    return RuleSet.load(
        [
            Path(__file__).resolve().parent / "differential" / "rules.yml",
            datasets / "sigmahq-rules" / "rules" / "application" / "kubernetes",
        ]
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(docs=st.lists(EVENTS, min_size=1, max_size=40))
def test_generated_events_match_like_the_interpreter(differential_rules, docs):
    # Every rule and every event, lists and objects included (the SQLite comparison leaves those out).
    rs = differential_rules
    for doc in docs:
        got = {r.id for r in rs.match_document(KUBERNETES_AUDIT, doc)}
        assert got == {c.info.id for c in rs._compiled if fires(c.info, c.ir, doc)}
