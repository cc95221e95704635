"""The alert steps of a job, laid out once for `kubesigma run`, the tests and the benches:

    matches → candidates → OnePerRequest → [Suppress] → alert documents           (single-event rules)
    hits    → candidates → [SuppressCorrelations]  → alert documents             (correlations)

Single-event and correlation alerts stay apart up to the sinks, which take both: a Flatten in between
would be one more copy of every alert on in-process runners (FnApiRunner writes a Flatten's inputs out
and reads them back).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from kubesigma.detections.correlation import CorrelationPlan
from kubesigma.pipeline.alerts import CandidateAlerts, OnePerRequest, hit_candidates, match_candidates
from kubesigma.pipeline.suppress import Suppress


def decide_alerts(
    matches: pvalue.PCollection,
    hits: pvalue.PCollection | None,
    plan: CorrelationPlan,
    soft_limit: int,
    window: float | None = None,
    bounded: bool | None = None,
) -> tuple[pvalue.PCollection, ...]:
    """Matches and correlation hits → (single-event alert documents, correlation alert documents), the
    steps labelled where they are applied (a stream's state is found again by these names). A job
    without correlation rules passes no hits (None) and gets the single-event documents alone: its
    correlation side would be eight steps that carry nothing, each paid for at start-up.

    The two are decided apart, each at its own watermark: a single-event alert waits for the source's
    watermark only, not for the correlation stages to catch up (which, on a busy stream, held every
    alert back by as much as they lagged). Suppression keys by rule and group, so no key spans the two.
    Each side makes its documents in a step of its own: Flink fuses a step after a Flatten into both
    producers' stages, and did not add up its counters (1 alert reported of 3)."""
    singles = (
        matches
        | "Candidates" >> beam.FlatMap(match_candidates, plan)
        | "OnePerRequest" >> OnePerRequest(bounded)
    )
    if window is not None:
        singles = singles | "Suppress" >> Suppress(window)
    documents = singles | "Alerts" >> CandidateAlerts(soft_limit, plan)
    if hits is None:
        return (documents,)
    correlated = hits | "CorrelationCandidates" >> beam.FlatMap(hit_candidates, plan)
    if window is not None:
        correlated = correlated | "SuppressCorrelations" >> Suppress(window)
    return documents, correlated | "CorrelationAlerts" >> CandidateAlerts(soft_limit, plan)
