"""Conditions, logsource routing, filters, disabling, correlation rules and multi-view events."""

from __future__ import annotations

import pickle

import pytest

from kubesigma.connectors.model import (
    AWS_CLOUDTRAIL,
    GCP_AUDIT,
    KUBERNETES_AUDIT,
    AuditEvent,
    LogSource,
    Source,
)
from kubesigma.detections.config import EngineConfig
from kubesigma.detections.engine import RuleSet
from support.sigma_rules import rule_doc, ruleset, write_rules

EXEC = {
    "verb": "create",
    "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "prod"},
    "user": {"username": "mallory"},
    "userAgent": "kubectl/v1.29",
}


def ids(rs: RuleSet, doc: dict, logsource: LogSource = KUBERNETES_AUDIT) -> set[str]:
    return {r.title for r in rs.match_document(logsource, doc)}


def test_one_of_pattern_needs_any_matching_selection(tmp_path):
    det = {
        "selection_a": {"verb": "delete"},
        "selection_b": {"objectRef.subresource": "exec"},
        "condition": "1 of selection_*",
    }
    assert ruleset(tmp_path, rule_doc(det)).match_document(KUBERNETES_AUDIT, EXEC)


def test_all_of_pattern_needs_every_selection(tmp_path):
    det = {
        "selection_a": {"verb": "delete"},
        "selection_b": {"objectRef.subresource": "exec"},
        "condition": "all of selection_*",
    }
    assert not ruleset(tmp_path, rule_doc(det)).match_document(KUBERNETES_AUDIT, EXEC)


def test_all_of_them_leaves_out_underscore_identifiers(tmp_path):
    det = {
        "a": {"verb": "create"},
        "b": {"user.username": "mallory"},
        "_helper": {"verb": "delete"},
        "condition": "all of them",
    }
    assert ruleset(tmp_path, rule_doc(det)).match_document(KUBERNETES_AUDIT, EXEC)


def test_one_of_them_leaves_out_underscore_identifiers(tmp_path):
    det = {"a": {"verb": "delete"}, "_helper": {"verb": "create"}, "condition": "1 of them"}
    assert not ruleset(tmp_path, rule_doc(det)).match_document(KUBERNETES_AUDIT, EXEC)


def test_rule_applies_only_to_its_product_and_service(tmp_path):
    rs = ruleset(
        tmp_path,
        rule_doc({"sel": {"verb": "create"}, "condition": "sel"}, title="k8s"),
        rule_doc(
            {"sel": {"verb": "create"}, "condition": "sel"}, product="aws", service="cloudtrail", title="aws"
        ),
    )
    assert ids(rs, EXEC) == {"k8s"}
    assert ids(rs, EXEC, AWS_CLOUDTRAIL) == {"aws"}
    assert ids(rs, EXEC, GCP_AUDIT) == set()


def test_rule_category_is_ignored_when_the_event_declares_none(tmp_path):
    rs = ruleset(
        tmp_path,
        rule_doc({"sel": {"verb": "create"}, "condition": "sel"}, logsource={"category": "application"}),
    )
    assert rs.match_document(KUBERNETES_AUDIT, EXEC)
    assert not rs.match_document(LogSource("kubernetes", "audit", "network"), EXEC)
    assert rs.match_document(LogSource("kubernetes", "audit", "application"), EXEC)


def test_filter_file_excludes_events_from_a_rule(tmp_path):
    rule = rule_doc(
        {"sel": {"objectRef.subresource": "exec"}, "condition": "sel"},
        id="6f7d0a5c-0000-4000-8000-00000000e1ec",
    )
    filt = {
        "title": "break-glass admins may exec",
        "id": "6f7d0a5c-0000-4000-8000-0000000000f1",
        "logsource": {"product": "kubernetes", "service": "audit"},
        "filter": {
            "rules": ["6f7d0a5c-0000-4000-8000-00000000e1ec"],
            "admins": {"user.username": ["mallory", "root"]},
            "condition": "not admins",
        },
    }
    filters = write_rules(tmp_path / "filters", filt)
    plain = ruleset(tmp_path, rule)
    tuned = ruleset(tmp_path, rule, config=EngineConfig(filter_paths=(filters,)))
    assert plain.match_document(KUBERNETES_AUDIT, EXEC)
    assert not tuned.match_document(KUBERNETES_AUDIT, EXEC)
    assert tuned.match_document(KUBERNETES_AUDIT, {**EXEC, "user": {"username": "eve"}})


def test_rules_are_disabled_by_id_or_tag(tmp_path):
    a = rule_doc(
        {"sel": {"verb": "create"}, "condition": "sel"}, id="6f7d0a5c-0000-4000-8000-00000000000a", title="a"
    )
    b = rule_doc({"sel": {"verb": "create"}, "condition": "sel"}, title="b", tags=["attack.execution"])
    c = rule_doc({"sel": {"verb": "create"}, "condition": "sel"}, title="c")
    config = EngineConfig(
        disabled_ids=frozenset({"6f7d0a5c-0000-4000-8000-00000000000a"}),
        disabled_tags=frozenset({"attack.execution"}),
    )
    assert ids(ruleset(tmp_path, a, b, c, config=config), EXEC) == {"c"}


def test_engine_config_reads_yaml_relative_to_itself(tmp_path):
    (tmp_path / "filters").mkdir()
    path = tmp_path / "engine.yml"
    path.write_text("disabled_ids: [x]\ndisabled_tags: [Attack.Discovery]\nfilters: [filters]\n")
    config = EngineConfig.from_file(path)
    assert config.disabled_ids == {"x"}
    assert config.disabled_tags == {"attack.discovery"}
    assert config.filter_paths == (tmp_path / "filters",)


def test_correlation_rules_load_but_are_not_evaluated(tmp_path):
    base = rule_doc({"sel": {"objectRef.subresource": "exec"}, "condition": "sel"}, name="pod_exec")
    corr = {
        "title": "many execs",
        "id": "6f7d0a5c-0000-4000-8000-0000000000c0",
        "name": "many_execs",
        "correlation": {
            "type": "event_count",
            "rules": ["pod_exec"],
            "group-by": ["user.username"],
            "timespan": "5m",
            "condition": {"gte": 10},
        },
        "level": "high",
    }
    rs = ruleset(tmp_path, base, corr)
    assert [c.title for c in rs.correlation_rules] == ["many execs"]
    assert rs.rule("many_execs").kind == "correlation"
    assert rs.rule("many_execs").group_by == ("user.username",)
    assert rs.rule("pod_exec").id == base["id"]
    assert [r.title for r in rs.match_document(KUBERNETES_AUDIT, EXEC)] == [base["title"]]


def test_a_rule_matched_in_two_views_is_reported_once(tmp_path):
    rs = ruleset(
        tmp_path, rule_doc({"kw": ["mallory"], "condition": "kw"}, product="kubernetes", service="audit")
    )
    event = AuditEvent(
        views=((KUBERNETES_AUDIT, EXEC), (KUBERNETES_AUDIT, {"user": {"username": "mallory"}})),
        time=0.0,
        event_id="e",
        identity="e",
        source=Source("mem"),
        size=1,
    )
    assert len(rs.match(event)) == 1
    assert rs.match_batch([event, event]) == [rs.match(event)] * 2


def test_each_view_is_matched_against_its_own_logsource(tmp_path):
    rs = ruleset(
        tmp_path,
        rule_doc(
            {"sel": {"protoPayload.methodName": "io.k8s.core.v1.pods.create"}, "condition": "sel"},
            product="gcp",
            service="gcp.audit",
            title="gke",
        ),
        rule_doc({"sel": {"verb": "create"}, "condition": "sel"}, title="k8s"),
    )
    entry = {"protoPayload": {"methodName": "io.k8s.core.v1.pods.create"}}
    event = AuditEvent(
        views=((KUBERNETES_AUDIT, EXEC), (GCP_AUDIT, entry)),
        time=0.0,
        event_id="e",
        identity="e",
        source=Source("mem"),
        size=1,
    )
    assert {r.title for r in rs.match(event)} == {"k8s", "gke"}


def test_ruleset_survives_pickling(tmp_path):
    rs = ruleset(tmp_path, rule_doc({"sel": {"objectRef.subresource": "exec"}, "condition": "sel"}))
    clone = pickle.loads(pickle.dumps(rs))
    assert clone.match_document(KUBERNETES_AUDIT, EXEC) == rs.match_document(KUBERNETES_AUDIT, EXEC)
    assert clone.rules == rs.rules


def test_dispatch_keys_of_any_case_and_type_match_like_the_rule(tmp_path):
    rs = ruleset(
        tmp_path,
        rule_doc({"sel": {"verb": ["create", "update"], "objectRef.resource": "pods"}, "condition": "sel"}),
    )
    docs = [
        {"verb": "CREATE", "objectRef": {"resource": "Pods"}},
        {"verb": ["list", "update"], "objectRef": {"resource": "pods"}},
        {"verb": "create", "objectRef": [{"resource": "nodes"}, {"resource": "pods"}]},
    ]
    assert [bool(rs.match_document(KUBERNETES_AUDIT, d)) for d in docs] == [True, True, True]
    assert not rs.match_document(KUBERNETES_AUDIT, {"verb": "create"})


@pytest.mark.parametrize("n", [1, 300])
def test_many_distinct_keys_keep_matching(tmp_path, n, monkeypatch):
    from kubesigma.detections.engine import routing

    monkeypatch.setattr(routing, "MAX_BUCKETS", 5)
    rs = ruleset(tmp_path, rule_doc({"sel": {"verb|startswith": "v1"}, "condition": "sel"}))
    hits = [bool(rs.match_document(KUBERNETES_AUDIT, {"verb": f"v{i}"})) for i in range(n)]
    assert hits == [str(i).startswith("1") for i in range(n)]


def test_base_rules_of_a_non_generating_correlation_are_marked(tmp_path):
    base = rule_doc({"sel": {"objectRef.subresource": "exec"}, "condition": "sel"}, name="exec_base")
    corr = {
        "title": "exec burst",
        "id": "6f7d0a5c-0000-4000-8000-0000000000c1",
        "correlation": {
            "type": "event_count",
            "rules": ["exec_base"],
            "group-by": ["user.username"],
            "timespan": "1m",
            "condition": {"gte": 3},
        },
    }
    rs = ruleset(tmp_path, base, corr)
    assert rs.correlation_only_ids == {base["id"]}
