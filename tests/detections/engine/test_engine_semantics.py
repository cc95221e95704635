"""Sigma detection semantics (specification: maps AND, lists OR, keywords, case, wildcards, null, paths)."""

from __future__ import annotations

from kubesigma.connectors.model import KUBERNETES_AUDIT
from support.sigma_rules import matches, rule_doc, ruleset

POD_CREATE = {
    "kind": "Event",
    "verb": "create",
    "user": {"username": "alice@example.com", "groups": ["system:authenticated", "devs"]},
    "objectRef": {"resource": "pods", "namespace": "default", "name": "web"},
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC"},
    "responseStatus": {"code": 201},
    "requestObject": {
        "spec": {
            "containers": [
                {"name": "a", "image": "nginx:1.25", "securityContext": {"privileged": False}},
                {"name": "b", "image": "evil/miner:latest", "securityContext": {"privileged": True}},
            ]
        }
    },
}


def test_map_entries_are_and_linked(tmp_path):
    assert matches(
        {"sel": {"verb": "create", "objectRef.resource": "pods"}, "condition": "sel"}, POD_CREATE, tmp_path
    )
    assert not matches(
        {"sel": {"verb": "create", "objectRef.resource": "secrets"}, "condition": "sel"}, POD_CREATE, tmp_path
    )


def test_value_list_is_or_linked(tmp_path):
    assert matches({"sel": {"verb": ["delete", "create"]}, "condition": "sel"}, POD_CREATE, tmp_path)
    assert not matches({"sel": {"verb": ["delete", "patch"]}, "condition": "sel"}, POD_CREATE, tmp_path)


def test_list_of_maps_is_or_linked(tmp_path):
    det = {"sel": [{"verb": "delete"}, {"objectRef.resource": "pods"}], "condition": "sel"}
    assert matches(det, POD_CREATE, tmp_path)
    det = {"sel": [{"verb": "delete"}, {"objectRef.resource": "secrets"}], "condition": "sel"}
    assert not matches(det, POD_CREATE, tmp_path)


def test_matching_is_case_insensitive_by_default(tmp_path):
    assert matches(
        {"sel": {"verb": "CREATE", "user.username": "Alice@Example.com"}, "condition": "sel"},
        POD_CREATE,
        tmp_path,
    )


def test_cased_modifier_matches_case_sensitively(tmp_path):
    assert not matches({"sel": {"verb|cased": "CREATE"}, "condition": "sel"}, POD_CREATE, tmp_path)
    assert matches({"sel": {"verb|cased": "create"}, "condition": "sel"}, POD_CREATE, tmp_path)


def test_star_and_question_mark_are_wildcards(tmp_path):
    assert matches({"sel": {"user.username": "ali*@*.com"}, "condition": "sel"}, POD_CREATE, tmp_path)
    assert matches({"sel": {"objectRef.name": "w?b"}, "condition": "sel"}, POD_CREATE, tmp_path)
    assert not matches({"sel": {"objectRef.name": "w?"}, "condition": "sel"}, POD_CREATE, tmp_path)


def test_escaped_wildcards_match_literally(tmp_path):
    doc = {"verb": "get", "requestURI": "/api?watch=*"}
    assert matches({"sel": {"requestURI": "/api\\?watch=\\*"}, "condition": "sel"}, doc, tmp_path)
    assert not matches(
        {"sel": {"requestURI": "/api\\?watch=\\*"}, "condition": "sel"},
        {"verb": "get", "requestURI": "/apiXwatch=1"},
        tmp_path,
    )


def test_null_matches_absent_and_json_null(tmp_path):
    det = {"sel": {"objectRef.subresource": None}, "condition": "sel"}
    assert matches(det, POD_CREATE, tmp_path)
    assert matches(det, {**POD_CREATE, "objectRef": {"resource": "pods", "subresource": None}}, tmp_path)
    assert not matches(
        det, {**POD_CREATE, "objectRef": {"resource": "pods", "subresource": "exec"}}, tmp_path
    )


def test_dotted_path_reaches_any_list_element(tmp_path):
    det = {"sel": {"requestObject.spec.containers.image|startswith": "evil/"}, "condition": "sel"}
    assert matches(det, POD_CREATE, tmp_path)
    det = {"sel": {"requestObject.spec.containers.securityContext.privileged": True}, "condition": "sel"}
    assert matches(det, POD_CREATE, tmp_path)


def test_leaf_list_matches_any_element(tmp_path):
    assert matches({"sel": {"user.groups": "devs"}, "condition": "sel"}, POD_CREATE, tmp_path)
    assert not matches({"sel": {"user.groups": "admins"}, "condition": "sel"}, POD_CREATE, tmp_path)


def test_keys_holding_dots_and_slashes_resolve(tmp_path):
    det = {"sel": {"annotations.authorization.k8s.io/decision": "allow"}, "condition": "sel"}
    assert matches(det, POD_CREATE, tmp_path)
    det = {"sel": {"annotations.authorization.k8s.io/decision": "forbid"}, "condition": "sel"}
    assert not matches(det, POD_CREATE, tmp_path)


def test_keywords_search_all_strings_and_keys(tmp_path):
    assert matches({"keywords": ["miner"], "condition": "keywords"}, POD_CREATE, tmp_path)
    assert matches(
        {"keywords": ["authorization.k8s.io/reason"], "condition": "keywords"}, POD_CREATE, tmp_path
    )
    assert not matches({"keywords": ["bitcoin"], "condition": "keywords"}, POD_CREATE, tmp_path)


def test_keyword_wildcards_stay_within_one_string(tmp_path):
    assert matches({"keywords": ["evil*latest"], "condition": "keywords"}, POD_CREATE, tmp_path)
    # "nginx" and "latest" are in different strings: no match across them
    assert not matches({"keywords": ["nginx*latest"], "condition": "keywords"}, POD_CREATE, tmp_path)


def test_numbers_match_numbers_and_numeric_text(tmp_path):
    assert matches({"sel": {"responseStatus.code": 201}, "condition": "sel"}, POD_CREATE, tmp_path)
    assert matches({"sel": {"responseStatus.code": "201"}, "condition": "sel"}, POD_CREATE, tmp_path)
    assert matches(
        {"sel": {"responseStatus.code": 201}, "condition": "sel"},
        {"responseStatus": {"code": "201"}},
        tmp_path,
    )


def test_string_pattern_never_matches_an_object(tmp_path):
    assert not matches({"sel": {"objectRef": "*"}, "condition": "sel"}, POD_CREATE, tmp_path)


def test_missing_field_does_not_match_a_value(tmp_path):
    assert not matches({"sel": {"impersonatedUser.username": "*"}, "condition": "sel"}, POD_CREATE, tmp_path)


def test_not_and_parentheses(tmp_path):
    det = {
        "a": {"verb": "create"},
        "b": {"objectRef.resource": "secrets"},
        "c": {"objectRef.namespace": "default"},
        "condition": "a and not (b or not c)",
    }
    assert matches(det, POD_CREATE, tmp_path)


def test_dotted_key_is_found_at_any_depth_when_the_plain_key_is_absent(tmp_path):
    doc = {"requestObject": {"metadata": {"labels": {"app.kubernetes.io/name": "web"}}}, "a.b": {"c": "x"}}
    assert matches(
        {"sel": {"requestObject.metadata.labels.app.kubernetes.io/name": "web"}, "condition": "sel"},
        doc,
        tmp_path,
    )
    assert matches({"sel": {"a.b.c": "x"}, "condition": "sel"}, doc, tmp_path)


def test_plain_key_wins_over_a_dotted_key_at_the_same_level(tmp_path):
    doc = {"a": {"b": "plain"}, "a.b": "dotted"}
    assert matches({"sel": {"a.b": "plain"}, "condition": "sel"}, doc, tmp_path)
    assert not matches({"sel": {"a.b": "dotted"}, "condition": "sel"}, doc, tmp_path)


def test_shared_path_prefixes_still_see_dotted_keys(tmp_path):
    rules = [
        rule_doc({"sel": {"requestObject.spec.containers.image": "evil"}, "condition": "sel"}, title="image"),
        rule_doc({"sel": {"requestObject.spec.containers.name": "c1"}, "condition": "sel"}, title="name"),
        rule_doc({"sel": {"requestObject.spec.hostPID": True}, "condition": "sel"}, title="pid"),
    ]
    rs = ruleset(tmp_path, *rules)
    docs = [
        {"requestObject": {"spec": {"containers": [{"image": "evil", "name": "c1"}], "hostPID": True}}},
        {"requestObject.spec": {"containers": [{"image": "evil", "name": "c1"}], "hostPID": True}},
        {"requestObject": {"spec.containers": [{"image": "evil", "name": "c1"}], "spec.hostPID": True}},
    ]
    for doc in docs:
        assert {r.title for r in rs.match_document(KUBERNETES_AUDIT, doc)} == {"image", "name", "pid"}, doc
    # where the plain key exists it is followed, with no retry through a dotted sibling
    mixed = {
        "requestObject": {
            "spec": {"containers.image": "evil", "containers": [{"name": "c1"}]},
            "spec.hostPID": True,
        }
    }
    assert {r.title for r in rs.match_document(KUBERNETES_AUDIT, mixed)} == {"name"}
    assert not rs.match_document(KUBERNETES_AUDIT, {"requestObject": {"status": {}}})
