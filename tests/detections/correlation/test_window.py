"""Event-time window semantics of correlation rules, without Beam: events fed in time order."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesigma.detections.correlation import Contribution, CorrelationSpec, Correlator
from support.correlation_pack import SECRET_ACCESS, correlation, load

T0 = 1_764_320_400.0  # 2025-11-28T09:00:00Z, a 5-minute boundary: fixed windows would split here
ALICE = ("alice",)


def spec_of(tmp_path: Path, body: str) -> CorrelationSpec:
    _, plan = load(tmp_path, correlation(body))
    return plan.specs[0]


def count(gte: int = 5, timespan: str = "5m", op: str = "gte") -> str:
    return f"""\
    type: event_count
    rules: secret_access
    group-by: [user.username]
    timespan: {timespan}
    condition:
        {op}: {gte}
"""


def feed(
    spec: CorrelationSpec, items: list[tuple[float, int, object]], group=ALICE, end: float | None = None
):
    """Feed (time, rule index, value) in time order; then let event time pass `end` (or infinity)."""
    correlator = Correlator(spec)
    firings = []
    for n, (t, rule, value) in enumerate(sorted(items, key=lambda x: x[0])):
        firings += correlator.add(group, Contribution(t, f"evt-{t}-{n}", rule, value, f"id-{n}"))
    firings += correlator.advance(float("inf") if end is None else end)
    return firings, correlator


def test_burst_straddling_a_fixed_window_boundary_fires(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, count(5))
    burst = [(T0 - 20 + 10 * i, 0, None) for i in range(5)]  # 3 before the boundary, 2 after
    firings, _ = feed(spec, burst)
    assert len(firings) == 1
    assert firings[0].trigger.time == T0 + 20


def test_slow_pattern_spread_beyond_the_timespan_does_not_fire(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, count(5))
    slow = [(T0 + 100 * i, 0, None) for i in range(20)]  # one every 100 s: at most 4 in any 5 minutes
    firings, _ = feed(spec, slow)
    assert firings == []


def test_fires_once_then_the_group_starts_afresh(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, count(5))
    firings, _ = feed(spec, [(T0 + i, 0, None) for i in range(9)])
    assert len(firings) == 1  # the 5th fires; 4 more are not enough for a second firing
    firings, _ = feed(spec, [(T0 + i, 0, None) for i in range(10)])
    assert len(firings) == 2


def test_alert_id_depends_on_rule_group_and_first_event_only(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, count(3))
    a, _ = feed(spec, [(T0, 0, None), (T0 + 1, 0, None), (T0 + 2, 0, None)])
    b, _ = feed(spec, [(T0, 0, None), (T0 + 50, 0, None), (T0 + 60, 0, None)])
    c, _ = feed(spec, [(T0, 0, None), (T0 + 1, 0, None), (T0 + 2, 0, None)], group=("bob",))
    assert a[0].alert_id == b[0].alert_id  # same first event, same group
    assert a[0].alert_id != c[0].alert_id


DISTINCT_NAMES = """\
    type: value_count
    rules: secret_access
    group-by: [user.username]
    timespan: 5m
    condition:
        gte: 3
        field: objectRef.name
"""


def test_value_count_counts_distinct_values(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, DISTINCT_NAMES)
    same, _ = feed(spec, [(T0 + i, 0, "db-password") for i in range(10)])
    assert same == []
    distinct, _ = feed(spec, [(T0 + i, 0, f"secret-{i % 3}") for i in range(3)])
    assert len(distinct) == 1
    assert distinct[0].value == 3


def test_value_count_counts_objects_where_strings_were_expected(tmp_path: Path) -> None:
    # The fuzzer found a correlation stage failing on an object in the counted field (unhashable).
    spec = spec_of(tmp_path, DISTINCT_NAMES)
    names = [{"a": 1}, {"a": 1}, ["x", {"b": 2}], "db-password", {"a": 2}]
    values = [spec.value(SECRET_ACCESS, {"objectRef": {"name": n}}) for n in names]
    assert values[0] == values[1] != values[4]  # equal objects count once, different ones apart
    fired, _ = feed(spec, [(T0 + i, 0, v) for i, v in enumerate(values)])
    assert len(fired) == 1 and fired[0].value == 3  # {"a": 1} twice, then the list, then the string


ORDERED = """\
    type: temporal_ordered
    rules: [binding_created, pod_exec]
    group-by: [user.username]
    timespan: 10m
"""


def test_temporal_ordered_fires_when_the_rules_match_in_order(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, ORDERED)
    firings, _ = feed(spec, [(T0, 0, None), (T0 + 60, 1, None)])
    assert len(firings) == 1
    assert firings[0].first.rule == 0


def test_temporal_ordered_ignores_the_reverse_order(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, ORDERED)
    firings, _ = feed(spec, [(T0, 1, None), (T0 + 60, 0, None)])
    assert firings == []


def test_temporal_ordered_needs_both_within_the_timespan(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, ORDERED)
    firings, _ = feed(spec, [(T0, 0, None), (T0 + 601, 1, None)])
    assert firings == []


def test_temporal_fires_in_any_order(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, ORDERED.replace("temporal_ordered", "temporal"))
    firings, _ = feed(spec, [(T0, 1, None), (T0 + 60, 0, None)])
    assert len(firings) == 1


def test_extended_condition_with_not_requires_absence_in_the_window(tmp_path: Path) -> None:
    body = (
        ORDERED.replace("temporal_ordered", "temporal") + "    condition: binding_created and not pod_exec\n"
    )
    spec = spec_of(tmp_path, body)
    alone, _ = feed(spec, [(T0, 0, None)])
    assert len(alone) == 1
    with_exec, _ = feed(spec, [(T0, 1, None), (T0 + 1, 0, None)])
    assert with_exec == []


def test_lt_condition_is_evaluated_when_the_window_closes(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, count(3, op="lt"))
    open_window, _ = feed(spec, [(T0, 0, None), (T0 + 1, 0, None)], end=T0 + 299)
    assert open_window == []
    closed, _ = feed(spec, [(T0, 0, None), (T0 + 1, 0, None)], end=T0 + 300)
    assert len(closed) == 1
    assert closed[0].value == 2
    busy, _ = feed(spec, [(T0 + i, 0, None) for i in range(4)])
    assert busy == []


def test_eq_condition_compares_the_whole_window(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, count(3, op="eq"))
    three, _ = feed(spec, [(T0 + i, 0, None) for i in range(3)])
    four, _ = feed(spec, [(T0 + i, 0, None) for i in range(4)])
    assert (len(three), len(four)) == (1, 0)


@pytest.mark.parametrize(
    ("kind", "extra", "values", "fires"),
    [
        ("value_sum", "", [4, 4, 4], True),
        ("value_sum", "", [4, 4], False),
        ("value_avg", "", [10, 2], False),
        ("value_avg", "", [10, 20], True),
        ("value_median", "", [1, 12, 30], True),
        ("value_percentile", "        percentile: 90\n", [1, 2, 3, 4, 50], True),
        ("value_percentile", "        percentile: 50\n", [1, 2, 3, 4, 50], False),
    ],
)
def test_value_aggregations(tmp_path: Path, kind: str, extra: str, values: list[int], fires: bool) -> None:
    body = f"""\
    type: {kind}
    rules: secret_access
    group-by: [user.username]
    timespan: 5m
    condition:
        gte: 12
        field: responseObject.size
{extra}"""
    spec = spec_of(tmp_path, body)
    firings, _ = feed(spec, [(T0 + i, 0, v) for i, v in enumerate(values)])
    assert bool(firings) is fires


def test_state_of_a_group_is_forgotten_once_its_events_expire(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, count(5))
    _, correlator = feed(spec, [(T0, 0, None), (T0 + 1, 0, None)], end=T0 + 302)
    assert correlator.state_size() == 0
    assert correlator.windows == {}


def test_a_later_step_after_a_first_step_older_than_the_timespan_is_not_kept(tmp_path: Path) -> None:
    """A first step at 0, a second 650 s later (timespan 10 minutes): too late. It must not be counted
    even while nothing newer has pushed the old first step out yet, so a later sequence's window holds
    only its own steps, in a batch run as in a stream whose timers have forgotten the old step."""
    spec = spec_of(
        tmp_path,
        """\
    type: temporal_ordered
    rules: [binding_created, pod_exec]
    group-by: [user.username]
    timespan: 10m
""",
    )
    firings, _ = feed(spec, [(T0, 0, None), (T0 + 650, 1, None), (T0 + 700, 0, None), (T0 + 750, 1, None)])
    assert len(firings) == 1
    assert firings[0].events == 2  # the second sequence's own two steps, not the stray one at 650
    assert firings[0].first.time == T0 + 700
