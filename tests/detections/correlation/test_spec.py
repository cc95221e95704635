"""Compiling pySigma correlation rules: references, aliases, chains, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesigma.detections.correlation import CorrelationError
from kubesigma.detections.correlation.spec import MAX_GROUP_FANOUT, MAX_GROUP_SCAN
from kubesigma.detections.engine import RuleLoadError
from support.correlation_pack import BINDING, ENUMERATION_BODY, POD_EXEC, SECRET_ACCESS, correlation, load

ENUM = ENUMERATION_BODY  # ten distinct secrets by one identity in five minutes
# A binding's subjects and an exec's user, grouped as one field under two names.
ALIASED = """\
    type: temporal_ordered
    rules: [binding_created, pod_exec]
    group-by: [subject]
    timespan: 30m
    aliases:
        subject:
            binding_created: requestObject.subjects.name
            pod_exec: user.username
"""


def test_rules_referenced_by_name_resolve_to_their_ids(tmp_path: Path) -> None:
    _, plan = load(tmp_path, correlation(ENUM))
    (spec,) = plan.specs
    assert spec.rules == (SECRET_ACCESS,)
    assert spec.timespan == 300


def test_rules_referenced_by_id_resolve_too(tmp_path: Path) -> None:
    _, plan = load(tmp_path, correlation(ENUM.replace("rules: secret_access", f"rules: {POD_EXEC}")))
    assert plan.specs[0].rules == (POD_EXEC,)


def test_generate_false_silences_the_referenced_rules(tmp_path: Path) -> None:
    _, plan = load(tmp_path, correlation(ENUM))
    assert not plan.alerts_alone(SECRET_ACCESS)
    assert plan.alerts_alone(POD_EXEC)


def test_generate_true_keeps_the_referenced_rules_alerting(tmp_path: Path) -> None:
    _, plan = load(tmp_path, correlation(ENUM + "    generate: true\n"))
    assert plan.alerts_alone(SECRET_ACCESS)


def test_aliases_give_each_rule_its_own_group_field(tmp_path: Path) -> None:
    _, plan = load(tmp_path, correlation(ALIASED))
    spec = plan.specs[0]
    binding = {
        "requestObject": {"subjects": [{"kind": "User", "name": "mallory"}, {"kind": "User", "name": "eve"}]}
    }
    assert spec.groups(BINDING, binding) == [("mallory",), ("eve",)]
    assert spec.groups(POD_EXEC, {"user": {"username": "mallory"}}) == [("mallory",)]


def test_a_group_field_holding_a_huge_list_gives_its_first_distinct_values_only(tmp_path: Path) -> None:
    _, plan = load(tmp_path, correlation(ALIASED))
    spec = plan.specs[0]
    names = ["mallory", "mallory", "eve"] + [f"user-{i % 5000}" for i in range(200_000)]
    binding = {"requestObject": {"subjects": [{"kind": "User", "name": n} for n in names]}}
    groups = spec.groups(BINDING, binding)
    # A fuzzed record once took seconds here: distinct values were found by scanning a list per value.
    assert groups == [("mallory",), ("eve",)] + [(f"user-{i}",) for i in range(MAX_GROUP_FANOUT - 2)]
    same = {"requestObject": {"subjects": [{"name": "eve"}] * MAX_GROUP_SCAN + [{"name": "mallory"}]}}
    assert spec.groups(BINDING, same) == [("eve",)]  # the rest is not looked at


def test_a_group_field_that_is_a_huge_list_of_strings_gives_the_values_of_its_first_items(
    tmp_path: Path,
) -> None:
    _, plan = load(tmp_path, correlation(ALIASED))
    spec = plan.specs[0]
    # A fuzzed username of 150,000 strings: its first items are read, nested lists flattened.
    nested = {"user": {"username": ["eve", ["mallory", ["trudy"]]] + ["eve"] * 150_000}}
    assert spec.groups(POD_EXEC, nested) == [("eve",), ("mallory",), ("trudy",)]
    beyond = {"user": {"username": ["eve"] * MAX_GROUP_SCAN + ["mallory"]}}
    assert spec.groups(POD_EXEC, beyond) == [("eve",)]


def test_an_event_without_the_group_field_belongs_to_no_group(tmp_path: Path) -> None:
    _, plan = load(tmp_path, correlation(ENUM))
    assert plan.specs[0].groups(SECRET_ACCESS, {"verb": "get"}) == []


def test_unknown_rule_reference_is_refused_with_the_file(tmp_path: Path) -> None:
    with pytest.raises((CorrelationError, RuleLoadError)) as err:
        load(tmp_path, correlation(ENUM.replace("rules: secret_access", "rules: no_such_rule")))
    assert "correlations.yml" in str(err.value)
    assert "no_such_rule" in str(err.value)


def test_range_conditions_are_refused_as_unsupported_by_pysigma(tmp_path: Path) -> None:
    ranged = ENUM.replace("        gte: 10\n", "        gte: 10\n        lte: 100\n")
    with pytest.raises((CorrelationError, RuleLoadError)) as err:
        load(tmp_path, correlation(ranged))
    assert "correlations.yml" in str(err.value)
    assert "exactly one condition item" in str(err.value)


def test_temporal_ordered_with_a_closing_condition_is_refused(tmp_path: Path) -> None:
    body = """\
    type: temporal_ordered
    rules: [binding_created, pod_exec]
    group-by: [user.username]
    timespan: 30m
    condition:
        lt: 2
"""
    with pytest.raises(CorrelationError, match="temporal_ordered supports gt/gte"):
        load(tmp_path, correlation(body))


def test_chained_correlations_run_one_level_after_what_they_reference(tmp_path: Path) -> None:
    inner = correlation(
        ENUM.replace("    type:", "    generate: false\n    type:"),
        cid="c0ffee00-0000-4000-8000-0000000000a1",
    ).replace("title: Test Correlation", "title: Inner\nname: many_secrets")
    outer_body = """\
    type: temporal_ordered
    rules: [many_secrets, pod_exec]
    group-by: [user.username]
    timespan: 1h
"""
    _, plan = load(
        tmp_path, inner, correlation(outer_body, title="Outer", cid="c0ffee00-0000-4000-8000-0000000000a2")
    )
    levels = {s.title: s.level for s in plan.specs}
    assert levels == {"Inner": 0, "Outer": 1}
    assert not plan.alerts_alone("c0ffee00-0000-4000-8000-0000000000a1")


def test_extended_temporal_condition_compiles_to_an_expression(tmp_path: Path) -> None:
    body = """\
    type: temporal
    rules: [binding_created, pod_exec]
    group-by: [user.username]
    timespan: 10m
    condition: binding_created and not pod_exec
"""
    _, plan = load(tmp_path, correlation(body))
    spec = plan.specs[0]
    assert spec.expression == ("and", ("ref", 0), ("not", ("ref", 1)))
    assert spec.on_arrival
