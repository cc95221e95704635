"""From matches and correlation hits to alerts: candidates (what suppression decides on), then ECS documents.

    matches | FlatMap(match_candidates) | OnePerRequest() → Candidate   (one per rule and request)
    hits | FlatMap(hit_candidates) → Candidate                          (one per firing)
    candidates | CandidateAlerts(soft_limit, plan) → alert documents

`pipeline/decide.py` lays these steps (and suppression) out for `kubesigma run`, the tests and the benches.

Each alert's id is computed once, where the alert comes to be, by the id functions of the model: a
single-event alert's here (from the rule and the request, so every stage of one request gives the same
id), a correlation's when its window fires (`Firing.alert_id`), a follow-up's when its run of repeats
closes (suppress.py). Documents take the id they are given.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import BytesCoder
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue

from kubesigma.connectors.model import AuditEvent, RuleInfo
from kubesigma.connectors.model.alert import Suppression, alert_document, match_alert_id
from kubesigma.connectors.model.frozen import fast_pickle
from kubesigma.connectors.model.logsources import is_long_running
from kubesigma.detections.correlation import CorrelationPlan, correlation_fields
from kubesigma.detections.suppression import suppression_group
from kubesigma.pipeline.correlate import CorrelationHit
from kubesigma.pipeline.event_time import dump, load, seconds, timer_at
from kubesigma.pipeline.metrics import NAMESPACE, RULE_HITS
from kubesigma.pipeline.transforms import Match


@fast_pickle  # pickled as its field values; pickles of earlier versions (streaming state) still load
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


# Stage order of one request's records: the earliest stage speaks for the request (a long-running
# request's ResponseStarted comes when it starts; its ResponseComplete may come hours later).
_STAGES = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 3}
# How long after a request's event time its other stages may still come: an exec or port-forward
# session writes ResponseComplete when it ends, with the time the request was received.
REQUEST_HORIZON = 24 * 3600.0
# Any other request's stages come within its timeout (a minute by default); an hour also covers a
# source that delivers a record again (Pub/Sub, Kinesis: at least once). A stream keeps a request
# this long, not a day: the state a stream holds is the last hour's alerts, not the last day's.
SHORT_REQUEST_HORIZON = 3600.0


def request_horizon(event: AuditEvent) -> float:
    """How long a stream keeps that a request went out: a day for a long-running request (or a record
    that does not say: a GKE entry of an operation is one), an hour for any other request."""
    doc = event.document
    verb = doc.get("verb")
    if not isinstance(verb, str):
        return REQUEST_HORIZON
    ref = doc.get("objectRef")
    sub = ref.get("subresource") if isinstance(ref, dict) else None
    if is_long_running(verb, sub):
        return REQUEST_HORIZON
    return SHORT_REQUEST_HORIZON


def first_of_request(candidate: Candidate) -> tuple[float, int, str]:
    """Which of one request's candidates speaks for it: the earliest in event time, then stage."""
    stage = candidate.event.document.get("stage")
    return (candidate.time, _STAGES.get(stage, 4) if isinstance(stage, str) else 4, candidate.event.identity)


def _stage_keyed(candidate: Candidate) -> tuple[str, tuple[float, int, str, bytes]]:
    """A candidate by its alert id, with its place among the request's stages in front and itself
    pickled: the grouping moves plain values (an in-process runner decodes and encodes again what it
    groups), and only the first of each request is unpickled after it."""
    return candidate.alert_id, (
        *first_of_request(candidate),
        pickle.dumps(candidate, pickle.HIGHEST_PROTOCOL),
    )


class _FirstOfRequestGrouped(beam.DoFn):
    """Bounded input: a request's candidates all at once; the first of them, the rest counted."""

    def setup(self) -> None:
        self.repeated = Metrics.counter(NAMESPACE, "request_stages_merged")

    def process(
        self, element: tuple[str, Iterable[tuple[float, int, str, bytes]]]
    ) -> Iterator[TimestampedValue]:
        _, stages = element
        first: tuple[float, int, str, bytes] | None = None
        n = 0
        for stage in stages:
            n += 1
            if first is None or stage[:3] < first[:3]:
                first = stage
        if first is not None:
            if n > 1:
                self.repeated.inc(n - 1)
            yield TimestampedValue(pickle.loads(first[3]), first[0])


# A stream keeps the requests it has alerted on in this many keys, by a stable hash of the alert id:
# a key per alert id would leave one behind per alert on runners that keep every key they have seen
# (BundleBasedDirectRunner keeps ~600 bytes for each, cleared state included).
REQUEST_BUCKETS = 1024


def _bucket_keyed(candidate: Candidate) -> tuple[str, Candidate]:
    return str(zlib.crc32(candidate.alert_id.encode()) % REQUEST_BUCKETS), candidate


def _held(data: bytes | None) -> dict[str, float]:
    """A bucket's alert ids and when to forget them; nothing for an earlier version's state (b"1",
    under a key of its own alert id: its timer clears it)."""
    if not data or data == b"1":
        return {}
    held: dict[str, float] = load(data)
    return held


class _FirstOfRequestStreamed(beam.DoFn):
    """Unbounded input, per bucket of alert ids: the first candidate of a request to arrive goes on; any
    later stage of the same request is dropped (its alert would carry the same id) until the request's
    horizon has passed. The bucket keeps {alert id: when to forget it}, one timer at the earliest."""

    SEEN = ReadModifyWriteStateSpec("seen", BytesCoder())
    FORGET = TimerSpec("forget", TimeDomain.WATERMARK)

    def setup(self) -> None:
        self.repeated = Metrics.counter(NAMESPACE, "request_stages_merged")

    def process(
        self,
        element: tuple[str, Candidate],
        seen=beam.DoFn.StateParam(SEEN),
        forget=beam.DoFn.TimerParam(FORGET),
    ) -> Iterator[TimestampedValue]:
        _, candidate = element
        held = _held(seen.read())
        if candidate.alert_id in held:
            self.repeated.inc()
            return
        until = candidate.time + request_horizon(candidate.event)
        if not held or until < min(held.values()):
            forget.set(timer_at(until))
        held[candidate.alert_id] = until
        seen.write(dump(held))
        yield TimestampedValue(candidate, candidate.time)

    @on_timer(FORGET)
    def on_forget(
        self,
        ts=beam.DoFn.TimestampParam,
        seen=beam.DoFn.StateParam(SEEN),
        forget=beam.DoFn.TimerParam(FORGET),
    ) -> None:
        now = seconds(ts)
        kept = {alert_id: until for alert_id, until in _held(seen.read()).items() if until > now}
        if not kept:
            seen.clear()  # nothing left to remember: the bucket holds no state
            return
        seen.write(dump(kept))
        forget.set(timer_at(min(kept.values())))


class OnePerRequest(beam.PTransform):
    """Single-event alert candidates → one per rule and request: kube-apiserver writes a long-running
    request (exec, attach, port-forward, watch) when its response starts and again when it completes, GKE
    as two entries of one operation; their candidates share the alert id (rule and request). Correlation
    candidates are one per firing already and do not come here. Bounded input groups by alert id;
    unbounded keeps, per alert id, that it went out, for the request's `request_horizon` of event time,
    then forgets it."""

    def __init__(self, bounded: bool | None = None) -> None:
        super().__init__()
        self.bounded = bounded

    def expand(self, candidates: pvalue.PCollection) -> pvalue.PCollection:
        bounded = self.bounded
        if bounded is None:
            streaming = candidates.pipeline.options.view_as(StandardOptions).streaming
            bounded = bool(candidates.is_bounded) and not streaming
        if bounded:
            keyed = candidates | "ByRequest" >> beam.Map(_stage_keyed).with_output_types(
                tuple[str, tuple[float, int, str, bytes]]
            )
            return keyed | "Stages" >> beam.GroupByKey() | "First" >> beam.ParDo(_FirstOfRequestGrouped())
        keyed = candidates | "ByRequest" >> beam.Map(_bucket_keyed).with_output_types(tuple[str, Any])
        return keyed | "First" >> beam.ParDo(_FirstOfRequestStreamed())
