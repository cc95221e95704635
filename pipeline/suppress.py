"""Alert suppression in Beam: per rule and group, the first alert goes out and repeats within the window
fold into one follow-up alert.

    candidates | Suppress(window) → Candidate         (first out, repeats folded into a follow-up)

Candidates are decided in event time, then alert id order, once the watermark passes them
(`event_time.Pending`), so batch and streaming fold the same repeats. A late candidate is never
dropped: it joins (or opens) a run in arrival order. A group's state is forgotten once its run closes.
"""

# Beam declares state and timers as call defaults (`pending=DoFn.StateParam(PENDING)`).

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import BytesCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue

from kubesigma.connectors.model.alert import Suppression, iso_time, suppressed_alert_id
from kubesigma.detections.suppression import MAX_FOLDED_IDS, FoldedRun
from kubesigma.pipeline.alerts import Candidate
from kubesigma.pipeline.event_time import Pending, Progress, dump, key_of, load, seconds, timer_at
from kubesigma.pipeline.metrics import NAMESPACE


@dataclass
class _RunMeta(Progress):
    """What a rule and group keeps besides its pending candidates (state `meta`): the open run."""

    run: FoldedRun | None = None
    representative: Candidate | None = None  # the latest folded candidate: the follow-up's content


def _pending_candidates() -> Pending[Candidate]:
    """Candidates wait in state one a batch, decided in event time, then alert id order, each released
    as soon as the watermark passes it (a rule and group gets few: waiting for its newest held the
    oldest back by seconds)."""
    return Pending(
        attrgetter("time"),
        attrgetter("time", "alert_id"),
        lambda packed: [load(packed)],
        lambda meta, rest: [dump(c) for c in rest],
    )


class _SuppressGroups(beam.DoFn):
    """Per (rule, group): the first alert goes out, repeats within the window fold into one follow-up."""

    PENDING = BagStateSpec("pending", BytesCoder())
    META = ReadModifyWriteStateSpec("meta", BytesCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    CLOSE = TimerSpec("close", TimeDomain.WATERMARK)

    def __init__(self, window: float) -> None:
        self.window = window

    def setup(self) -> None:
        self.held = _pending_candidates()
        self.folded = Metrics.counter(NAMESPACE, "alerts_folded")

    def process(
        self,
        element: tuple[str, Candidate],
        pending=beam.DoFn.StateParam(PENDING),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        close=beam.DoFn.TimerParam(CLOSE),
    ) -> Iterator[Any]:
        _, candidate = element
        meta: _RunMeta = load(meta_state.read()) or _RunMeta()
        if meta.is_late(candidate.time):
            # Late: an alert is never dropped; it joins (or opens) a run in arrival order.
            yield from self._offer(meta, candidate, close)
        else:
            self.held.hold(meta, pending, flush, dump(candidate), candidate.time)
        meta_state.write(dump(meta))

    @on_timer(FLUSH)
    def on_flush(
        self,
        ts=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        close=beam.DoFn.TimerParam(CLOSE),
    ) -> Iterator[Any]:
        yield from self._advance(seconds(ts), pending, meta_state, flush, close)

    @on_timer(CLOSE)
    def on_close(
        self,
        ts=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        close=beam.DoFn.TimerParam(CLOSE),
    ) -> Iterator[Any]:
        yield from self._advance(seconds(ts), pending, meta_state, flush, close)

    def _advance(self, now, pending, meta_state, flush, close):
        meta: _RunMeta = load(meta_state.read()) or _RunMeta()
        for candidate in self.held.release(meta, pending, flush, now):
            yield from self._offer(meta, candidate, close)
        if meta.run is not None and now >= meta.run.end:
            yield from self._close_run(meta, now)
        if meta.run is None and meta.flush_at is None:
            meta_state.clear()  # nothing open, nothing pending: forget the group (a later alert starts anew)
            return
        meta_state.write(dump(meta))

    def _offer(self, meta: _RunMeta, candidate: Candidate, close) -> Iterator[Any]:
        run = meta.run
        if run is not None and run.covers(candidate.time):
            run.fold(candidate.time, candidate.alert_id)
            meta.representative = candidate
            self.folded.inc()
            return
        if run is not None:
            yield from self._close_run(meta, candidate.time)
        meta.run = FoldedRun.open(candidate.time, self.window, candidate.alert_id)
        close.set(timer_at(meta.run.end))
        yield TimestampedValue(candidate, candidate.time)

    def _close_run(self, meta: _RunMeta, now: float) -> Iterator[Any]:
        run, rep = meta.run, meta.representative
        meta.run, meta.representative = None, None
        if run is None or rep is None or not run.count:
            return
        follow_up = _follow_up(rep, run)
        # The follow-up is known only now (the run closed): stamped at its last fold it would be behind
        # the watermark, late for every event-time window downstream. Its document keeps last_seen.
        yield TimestampedValue(follow_up, max(follow_up.time, now))


def _follow_up(representative: Candidate, run: FoldedRun) -> Candidate:
    """The alert folding a closed run's repeats: the latest repeat's content, under an id of its own."""
    rule, group = representative.rule, representative.group
    return Candidate(
        rule=rule,
        time=run.last_seen,
        alert_id=suppressed_alert_id(rule.id, group, run.ids[0]),
        group=group,
        event=representative.event,
        hit=representative.hit,
        suppression=Suppression(
            count=run.count,
            first_seen=iso_time(run.first_seen),
            last_seen=iso_time(run.last_seen),
            alert_ids=list(run.ids[:MAX_FOLDED_IDS]),
            alert_ids_total=run.count,
        ),
    )


class Suppress(beam.PTransform):
    """Alert candidates → the first of each rule and group within `window` seconds, plus one follow-up
    folding the repeats (count, first/last seen, their ids), decided in event time then alert id order."""

    def __init__(self, window: float) -> None:
        super().__init__()
        self.window = window

    def expand(self, candidates: pvalue.PCollection) -> pvalue.PCollection:
        return (
            candidates
            | "Key" >> beam.Map(lambda c: (key_of(c.rule.id, c.group), c)).with_output_types(tuple[str, Any])
            | "Fold" >> beam.ParDo(_SuppressGroups(self.window))
        )
