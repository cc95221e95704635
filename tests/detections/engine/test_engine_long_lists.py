"""Fields holding huge lists, as the fuzzer made them (record 178957: a `requestObject` turned into a
150,000-item list; record 52699: `objectRef` into 300,000 items), match exactly as the reference
interpreter decides. The engine's shortcuts for long lists (dispatch and level keys UNKNOWN past
`KEY_VALUES` values, values derived once per match, elements that lead nowhere skipped) change no
result: a value that matches still matches wherever in a long list it stands."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.engine.fields import SHARED_MIN
from kubesigma.detections.engine.interpret import fires
from kubesigma.detections.engine.runtime import KEY_VALUES
from support.paths import SHIPPED_RULES

LONG = 1_500  # past SHARED_MIN and KEY_VALUES (the fuzzer's 150,000 would cost the interpreter minutes)
assert LONG > SHARED_MIN > KEY_VALUES


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet.load([SHIPPED_RULES])


def trace(datasets: Path, name: str) -> dict[str, Any]:
    for line in (datasets / "falco-k8s-audit" / "traces" / name).read_text().splitlines():
        doc = json.loads(line) if line.strip() else None
        if isinstance(doc, dict) and doc.get("kind") == "Event":
            return doc
    raise AssertionError(f"no audit Event in {name}")


def like_the_interpreter(rules: RuleSet, doc: dict[str, Any]) -> set[str]:
    """The titles the engine reports, asserted equal to those the interpreter decides."""
    got = {r.title for r in rules.match_document(KUBERNETES_AUDIT, doc)}
    want = {c.info.title for c in rules._compiled if fires(c.info, c.ir, doc)}
    assert got == want
    return got


def test_request_object_turned_into_a_huge_list_matches_like_the_interpreter(rules, datasets):
    # record 178957's shape: every rule path under requestObject walks a list of scalars
    pod = trace(datasets, "create_nginx_pod_privileged.json")
    for filler in ("x", 1, None):
        doc = copy.deepcopy(pod)
        doc["requestObject"] = [filler] * LONG
        assert "Privileged Container In A Pod Or Workload Spec" not in like_the_interpreter(rules, doc)


def test_a_pod_spec_behind_a_huge_list_of_scalars_still_matches(rules, datasets):
    pod = trace(datasets, "create_nginx_pod_privileged.json")
    for where in (0, LONG // 2, LONG):
        doc = copy.deepcopy(pod)
        doc["requestObject"] = ["x"] * LONG
        doc["requestObject"].insert(where, pod["requestObject"])
        assert "Privileged Container In A Pod Or Workload Spec" in like_the_interpreter(rules, doc)


def test_object_ref_turned_into_a_huge_list_matches_like_the_interpreter(rules, datasets):
    # record 52699's shape: the dispatch key (verb, resource, subresource) reads objectRef
    attach = trace(datasets, "attach_pod.json")
    for filler in ("x", 1, None, {"resource": "configmaps"}):
        doc = copy.deepcopy(attach)
        doc["objectRef"] = [filler] * LONG
        like_the_interpreter(rules, doc)


def test_an_exec_behind_a_long_object_ref_list_still_matches(rules, datasets):
    # The dispatch key cannot narrow on a long list (UNKNOWN): every rule is tried, none is lost.
    attach = trace(datasets, "attach_pod.json")
    for count in (KEY_VALUES, KEY_VALUES + 1, LONG):
        doc = copy.deepcopy(attach)
        doc["objectRef"] = [{"resource": "configmaps", "subresource": "x"}] * count + [attach["objectRef"]]
        assert "Exec Or Attach Into A Pod Container" in like_the_interpreter(rules, doc)


def test_identities_in_long_lists_still_match(rules, datasets):
    # Levels key on who is acting: a username or group list past KEY_VALUES is not folded, but read.
    anonymous = trace(datasets, "anonymous_creates_namespace_foo.json")
    cases = [
        ["alice"] * (KEY_VALUES - 1),
        [7] * (KEY_VALUES + 1),
        [None, "bob", 2.5, True] * (SHARED_MIN // 4 + 1),
    ]
    for values in cases:
        doc = copy.deepcopy(anonymous)
        doc["user"]["username"] = [*values, "system:anonymous"]
        assert "Kubernetes API Request By Anonymous User Allowed" in like_the_interpreter(rules, doc)
        doc["user"]["username"] = values
        assert "Kubernetes API Request By Anonymous User Allowed" not in like_the_interpreter(rules, doc)


def test_credentials_among_a_long_list_of_config_values_still_match(rules, datasets):
    # keyword and `contains` rules read a long list's strings lowered and joined, once per match
    configmap = trace(datasets, "create_configmap_sensitive_values.json")
    clean = trace(datasets, "create_configmap_no_sensitive_values.json")
    for filler in ("X", "x" * 3, 12):
        doc = copy.deepcopy(clean)
        doc["requestObject"]["data"] = {"values": [filler] * LONG + [configmap["requestObject"]["data"]]}
        assert "ConfigMap Created Or Changed With Credentials In Clear Text" in like_the_interpreter(
            rules, doc
        )


def test_a_long_list_changed_in_place_between_matches_is_read_again(rules, datasets):
    # What is derived from a long list is kept for one match only: nothing carries over.
    anonymous = trace(datasets, "anonymous_creates_namespace_foo.json")
    doc = copy.deepcopy(anonymous)
    names = ["alice"] * LONG
    doc["user"]["username"] = names

    def titles() -> set[str]:
        return {r.title for r in rules.match_document(KUBERNETES_AUDIT, doc)}

    assert "Kubernetes API Request By Anonymous User Allowed" not in titles()
    names[LONG // 2] = "system:anonymous"
    assert "Kubernetes API Request By Anonymous User Allowed" in titles()


def test_a_username_of_many_strings_with_a_nested_list_matches_like_the_interpreter(rules, datasets):
    # record 401703's shape: a username of 150,000 strings, one of them a nested list; the keyword
    # rules read its strings, the identity rules its values, nested ones included, wherever they stand
    anonymous = trace(datasets, "anonymous_creates_namespace_foo.json")
    for where in (0, LONG // 2, LONG):
        doc = copy.deepcopy(anonymous)
        names: list[Any] = ["x"] * LONG
        names.insert(where, ["x", ["system:anonymous"]])
        doc["user"]["username"] = names
        assert "Kubernetes API Request By Anonymous User Allowed" in like_the_interpreter(rules, doc)
        names[where] = ["x", ["x", 3, None]]
        assert "Kubernetes API Request By Anonymous User Allowed" not in like_the_interpreter(rules, doc)


def test_a_long_list_of_strings_but_one_reads_every_value(rules, datasets):
    # Long lists of strings only take a shortcut; one value of another kind anywhere leaves it.
    anonymous = trace(datasets, "anonymous_creates_namespace_foo.json")
    for other in (1, None, {"name": "system:anonymous"}, ["system:anonymous"]):
        doc = copy.deepcopy(anonymous)
        doc["user"]["username"] = ["system:anonymous"] * LONG + [other]
        assert "Kubernetes API Request By Anonymous User Allowed" in like_the_interpreter(rules, doc)
        doc["user"]["username"] = ["SYSTEM:ANONYMOUS!"] * LONG + [other]
        like_the_interpreter(rules, doc)
