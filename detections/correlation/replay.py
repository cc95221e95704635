"""Correlation over a finite list of events in plain Python: the reference the Beam stage must agree
with, what rule tests run, and the engine-only side of the pipeline benchmark."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubesigma.connectors.model import AuditEvent
from kubesigma.detections.correlation.spec import CorrelationPlan
from kubesigma.detections.correlation.window import Contribution, Correlator, Firing


def replay(ruleset: Any, plan: CorrelationPlan, events: Iterable[AuditEvent]) -> list[Firing]:
    """Every correlation firing over the events, chained levels included, in event-time order."""
    # (time, request, rule id, document, event id): a request's stages count once
    matches: list[tuple[float, str, str, Any, str]] = []
    for event in events:
        for rule in ruleset.match(event):
            matches.append(
                (event.time, event.request_id, rule.id, event.view(rule.logsource)[1], event.event_id)
            )
    firings: list[Firing] = []
    inputs = matches
    for level in range(plan.levels):
        correlators = {spec.id: Correlator(spec) for spec in plan.at_level(level)}
        level_firings: list[Firing] = []
        for when, identity, rid, doc, event_id in sorted(inputs, key=lambda m: (m[0], m[1], m[2])):
            for spec, index in plan.routes(rid, level):
                contribution = Contribution(when, identity, index, spec.value(rid, doc), event_id)
                for group in spec.groups(rid, doc):
                    level_firings += correlators[spec.id].add(group, contribution)
        for correlator in correlators.values():
            level_firings += correlator.advance(float("inf"))
        firings += level_firings
        inputs = inputs + [
            (
                f.trigger.time,
                f.alert_id,
                f.spec_id,
                dict(zip(plan.spec(f.spec_id).group_by, f.group, strict=True)),
                f.alert_id,
            )
            for f in level_firings
        ]
    return sorted(firings, key=lambda f: (f.trigger.time, f.alert_id))
