"""The Kafka replay horizon of `--kafka-replay auto`: twice the longest stateful window of the job (the
suppression window; the correlation timespans, chained ones added up, plus the allowed lateness)."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from kubesigma.detections.correlation import CorrelationPlan, compile_correlations
from kubesigma.pipeline.options import KubesigmaOptions
from kubesigma.pipeline.run import load_rules, replay_horizon


def shipped_plan() -> CorrelationPlan:
    plan = compile_correlations(load_rules(PipelineOptions([]).view_as(KubesigmaOptions)))
    assert plan.levels == 2  # the shipped rules chain correlations: the horizon must cover both levels
    return plan


def test_without_correlations_the_horizon_is_two_suppression_windows() -> None:
    assert replay_horizon(CorrelationPlan(), 600.0, 120.0) == 1200.0
    assert replay_horizon(CorrelationPlan(), None, 120.0) == 0.0


def test_the_horizon_covers_chained_correlation_windows_and_the_allowed_lateness() -> None:
    plan = shipped_plan()
    horizon = replay_horizon(plan, None, 0.0)
    for inner in plan.at_level(0):
        for outer in plan.at_level(1):
            assert horizon >= 2 * (inner.timespan + outer.timespan)
    assert replay_horizon(plan, None, 300.0) == horizon + 600.0


def test_a_suppression_window_longer_than_every_correlation_decides() -> None:
    plan = shipped_plan()
    longest = replay_horizon(plan, None, 0.0) / 2
    assert replay_horizon(plan, longest + 3600, 0.0) == 2 * (longest + 3600)
    assert replay_horizon(plan, longest / 4, 0.0) == 2 * longest
