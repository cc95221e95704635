"""The engine IR and its analyses: nodes built from Sigma conditions, folding that keeps what it does not
change, and the facts the code generator and the dispatch index rest on."""

from __future__ import annotations

from kubesigma.connectors.model.logsources import GCP, KUBERNETES
from kubesigma.detections.engine.analysis import field_names, fold, necessary_values, required_root, shape
from kubesigma.detections.engine.ir import And, Not, Or, leaves
from kubesigma.detections.engine.modifiers import Leaf
from kubesigma.detections.engine.routing import Specializations
from support.sigma_rules import rule_doc, ruleset

EXEC_NOT_ADMIN = {
    "sel": {"verb": "create", "objectRef.subresource": "exec"},
    "tool": {"userAgent|contains": ["curl", "wget"]},
    "admin": {"user.groups": "system:masters"},
    "condition": "sel and tool and not admin",
}


def _ir(tmp_path, detection):
    (rule,) = ruleset(tmp_path, rule_doc(detection))._compiled
    return rule.ir


def test_conditions_become_and_or_not_over_leaves(tmp_path):
    ir = _ir(tmp_path, EXEC_NOT_ADMIN)
    assert isinstance(ir, And)
    sel, tool, negated = ir.children
    assert isinstance(sel, And) and isinstance(tool, Or) and isinstance(negated, Not)
    assert [leaf.field for leaf in leaves(ir)] == [
        "verb",
        "objectRef.subresource",
        "userAgent",
        "userAgent",
        "user.groups",
    ]
    assert field_names(ir) == {"verb", "objectRef.subresource", "userAgent", "user.groups"}


def test_folding_a_tree_that_reads_no_known_field_returns_it(tmp_path):
    ir = _ir(tmp_path, EXEC_NOT_ADMIN)
    assert fold(ir, {"objectRef.namespace": "default"}) is ir


def test_folding_keeps_unchanged_subtrees_as_the_same_objects(tmp_path):
    ir = _ir(tmp_path, EXEC_NOT_ADMIN)
    _, tool, negated = ir.children
    folded = fold(ir, {"verb": "create"})
    assert isinstance(folded, And) and folded is not ir
    new_sel, same_tool, same_negated = folded.children
    assert same_tool is tool and same_negated is negated
    assert isinstance(new_sel, Leaf) and new_sel.field == "objectRef.subresource"


def test_folding_to_a_constant(tmp_path):
    ir = _ir(tmp_path, EXEC_NOT_ADMIN)
    assert fold(ir, {"verb": "delete"}) is False
    assert fold(ir, {"user.groups": ("system:masters",)}) is False
    assert fold(_ir(tmp_path, {"sel": {"verb": "get"}, "condition": "sel"}), {"verb": "GET"}) is True


def test_equal_folds_have_equal_shapes(tmp_path):
    # Functions are reused per shape: two folds leaving the same leaves in the same tree share one.
    ir = _ir(tmp_path, EXEC_NOT_ADMIN)
    first, second = fold(ir, {"verb": "create"}), fold(ir, {"verb": "CREATE"})
    assert first is not second and shape(first) == shape(second)
    assert shape(first) != shape(fold(ir, {"objectRef.subresource": "exec"}))


def test_nothing_is_learned_through_a_negation(tmp_path):
    ir = _ir(tmp_path, {"sel": {"verb": "get"}, "other": {"verb": "list"}, "condition": "sel and not other"})
    assert necessary_values(ir, "verb") == {"get"}
    assert necessary_values(Not(ir), "verb") is None
    root = _ir(tmp_path, {"sel": {"requestObject.spec.hostPID": True}, "condition": "sel"})
    assert required_root(root) == "requestObject"
    assert required_root(Not(root)) is None


def test_specialization_follows_the_logsource_profile(tmp_path):
    ir = _ir(tmp_path, EXEC_NOT_ADMIN)
    kubernetes, gcp = Specializations(KUBERNETES), Specializations(GCP)
    assert kubernetes.specialize_fields([ir]) == {"verb", "objectRef.subresource", "userAgent", "user.groups"}
    assert gcp.specialize_fields([ir]) == set()
    assert kubernetes.rank("user.username") < kubernetes.rank("sourceIPs") < kubernetes.rank("verb")
