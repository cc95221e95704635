"""From matches and correlation hits to alerts: candidates (what suppression decides on), then ECS documents.

    (matches, hits) | ToCandidates(plan) → Candidate           (one per alert, at its event time)
    candidates | CandidateAlerts(soft_limit, plan) → alert documents
    matches | ToAlerts(soft_limit) → alert documents           (nothing correlates or suppresses)

Each alert's id is computed once, where the alert comes to be, by the id functions of the model: a
single-event alert's here, a correlation's when its window fires (`Firing.alert_id`), a follow-up's
when its run of repeats closes (suppress.py). Documents take the id they are given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from kubesigma.connectors.model import AuditEvent, RuleInfo
from kubesigma.connectors.model.alert import Suppression, alert_document, match_alert_id
from kubesigma.detections.correlation import CorrelationPlan, correlation_fields
from kubesigma.detections.suppression import suppression_group
from kubesigma.pipeline.correlate import CorrelationHit
from kubesigma.pipeline.metrics import NAMESPACE, RULE_HITS
from kubesigma.pipeline.transforms import Match


@dataclass(frozen=True)
class Candidate:
    """An alert about to be written: a single-event match or a correlation hit, maybe folding repeats."""

    rule: RuleInfo
    time: float
    alert_id: str
    group: tuple[str, ...]  # the suppression group: who acted on what, or the correlation's group
    event: AuditEvent
    hit: CorrelationHit | None = None
    suppression: Suppression | None = None


def match_candidates(matches: list[Match], plan: CorrelationPlan) -> Iterator[TimestampedValue]:
    """The alerts of single-event rules that alert alone, each at its event's time."""
    for rule, event in matches:
        if plan.alerts_alone(rule.id):
            candidate = Candidate(
                rule, event.time, match_alert_id(rule.id, event), suppression_group(rule, event), event
            )
            yield TimestampedValue(candidate, event.time)


def hit_candidates(hit: CorrelationHit, plan: CorrelationPlan) -> Iterator[Candidate]:
    """The alert of a correlation that alerts alone, under its firing's id."""
    firing = hit.firing
    if plan.alerts_alone(firing.spec_id):
        yield Candidate(plan.infos[firing.spec_id], hit.time, firing.alert_id, firing.group, hit.event, hit)


class ToCandidates(beam.PTransform):
    """Matches of rules that alert alone (from Detect's batches), and hits of correlations that do, as
    alert candidates, one element each at its event time."""

    def __init__(self, plan: CorrelationPlan) -> None:
        super().__init__()
        self.plan = plan

    def expand(self, pcolls: tuple[pvalue.PCollection, pvalue.PCollection]) -> pvalue.PCollection:
        matches, hits = pcolls
        singles = matches | "Singles" >> beam.FlatMap(match_candidates, self.plan)
        correlations = hits | "Correlations" >> beam.FlatMap(hit_candidates, self.plan)
        return (singles, correlations) | "Candidates" >> beam.Flatten()


def candidate_alert(candidate: Candidate, plan: CorrelationPlan, soft_limit: int) -> dict[str, Any]:
    """The ECS document of a candidate, under the candidate's alert id."""
    hit = candidate.hit
    return alert_document(
        candidate.rule,
        candidate.event,
        alert_id=candidate.alert_id,
        soft_limit=soft_limit,
        correlation=correlation_fields(hit.firing, plan.spec(hit.rule_id)) if hit is not None else None,
        suppression=candidate.suppression,
    )


class _CandidateToAlert(beam.DoFn):
    def __init__(self, soft_limit: int, plan: CorrelationPlan) -> None:
        self.soft_limit = soft_limit
        self.plan = plan

    def setup(self) -> None:
        self.alerts = Metrics.counter(NAMESPACE, "alerts")

    def process(self, candidate: Candidate) -> Iterator[dict[str, Any]]:
        self.alerts.inc()
        if candidate.hit is not None and candidate.suppression is None:
            # Correlation rules fire here (single-event rules are counted by Detect): the run summary.
            Metrics.counter(RULE_HITS, candidate.rule.id).inc()
        yield candidate_alert(candidate, self.plan, self.soft_limit)


class CandidateAlerts(beam.PTransform):
    """Alert candidates (single-event, correlation, follow-up) → ECS alert documents."""

    def __init__(self, soft_limit: int, plan: CorrelationPlan) -> None:
        super().__init__()
        self.soft_limit = soft_limit
        self.plan = plan

    def expand(self, candidates: pvalue.PCollection) -> pvalue.PCollection:
        return candidates | "Alert" >> beam.ParDo(_CandidateToAlert(self.soft_limit, self.plan))


class _ToAlert(beam.DoFn):
    def __init__(self, soft_limit: int) -> None:
        self.soft_limit = soft_limit

    def setup(self) -> None:
        self.alerts = Metrics.counter(NAMESPACE, "alerts")

    def process(self, matches: list[Match]) -> Iterator[TimestampedValue]:
        self.alerts.inc(len(matches))
        for rule, event in matches:
            # Each alert at its event's time (streaming output files are cut by event time).
            yield TimestampedValue(
                alert_document(
                    rule, event, alert_id=match_alert_id(rule.id, event), soft_limit=self.soft_limit
                ),
                event.time,
            )


class ToAlerts(beam.PTransform):
    """Batches of (rule, event) matches → ECS alert documents, redacted, one per match: the whole path
    from matches to documents when no rule correlates and nothing is suppressed (no candidates)."""

    def __init__(self, soft_limit: int) -> None:
        super().__init__()
        self.soft_limit = soft_limit

    def expand(self, matches: pvalue.PCollection) -> pvalue.PCollection:
        return matches | "Alert" >> beam.ParDo(_ToAlert(self.soft_limit))
