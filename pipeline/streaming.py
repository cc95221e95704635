"""Correlation and alert suppression as Beam state and event-time timers, the same in batch and streaming.

    matches | Correlate(plan) → CorrelationHit          (per correlation rule and group)
    candidates | Suppress(window) → Candidate           (per rule and group: first out, repeats folded)
    candidates | CandidateAlerts(soft_limit) → ECS alert documents

Each stateful stage buffers what arrives and processes it in event-time order (time, then identity)
when the watermark passes it, so the result does not depend on arrival order: a batch run (watermark
jumps to the end) and a streaming run give the same alerts. Event-time timers forget a group's state
once its window can no longer change, so state stays bounded by the groups active within a timespan.
On bounded input correlation groups each (rule, group) instead and evaluates it once, complete: the
same order and alerts without the cost of state per key (tests hold the two to the same alerts).
Elements older than what a group already processed are late: correlation counts them up to the
allowed lateness (in arrival order) and drops older ones (metric `late_dropped`); suppression never
drops an alert.
"""

# Beam declares state and timers as call defaults (`pending=DoFn.StateParam(PENDING)`).

from __future__ import annotations

import math
import pickle
import time as wallclock
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import orjson
from apache_beam import pvalue
from apache_beam.coders import BytesCoder
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import FixedWindows, GlobalWindow, TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from kubesigma.connectors.model import AuditEvent, RuleInfo
from kubesigma.connectors.model.alert import (
    Suppression,
    alert_document,
    group_text,
    iso_time,
    match_alert_id,
    suppressed_alert_id,
)
from kubesigma.connectors.model.event import event_from_bytes, event_to_bytes
from kubesigma.connectors.model.frozen import load_pickle
from kubesigma.detections.correlation import (
    Contribution,
    CorrelationPlan,
    Firing,
    GroupWindow,
)
from kubesigma.detections.suppression import MAX_FOLDED_IDS, FoldedRun, suppression_group
from kubesigma.pipeline.transforms import RULE_HITS, Match

NAMESPACE = "kubesigma"
KEY_SEP = "\x1f"
# Contributions a routing step holds before handing them on grouped by key (also at bundle end).
ROUTE_BUFFER = 20_000


@dataclass(frozen=True)
class CorrelationHit:
    """A correlation rule that fired for a group, with the event that completed it."""

    firing: Firing
    event: AuditEvent  # the triggering event (for chained correlations: the inner trigger)

    @property
    def rule_id(self) -> str:
        return self.firing.spec_id

    @property
    def time(self) -> float:
        return self.firing.trigger.time

    @property
    def alert_id(self) -> str:
        return self.firing.alert_id


@dataclass(frozen=True)
class Candidate:
    """An alert about to be written: a single-event match or a correlation hit, maybe folding repeats."""

    rule: RuleInfo
    time: float
    alert_id: str
    group: tuple[str, ...]
    event: AuditEvent
    hit: CorrelationHit | None = None
    suppression: Suppression | None = None

    @property
    def key(self) -> str:
        return f"{self.rule.id}{KEY_SEP}{group_text(self.group)}"


def _dump(value: Any) -> bytes:
    # State holds bytes: the SDK's state cache sizes cached objects deeply on every write, which is
    # slow for nested events and dataclasses, and trivial for bytes.
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _load(data: bytes | None) -> Any:
    return None if data is None else load_pickle(data)


def _timer_at(seconds: float) -> Timestamp:
    """A timer time at or after `seconds`: portable runners keep timers in milliseconds, and a timer
    that fired a fraction before its event's time would find it not yet due and re-arm forever."""
    return Timestamp(micros=math.ceil(seconds * 1000) * 1000)


def _ts(seconds: float) -> Timestamp:
    return Timestamp(micros=round(seconds * 1_000_000))


def _seconds(ts: Any) -> float:
    if isinstance(ts, Timestamp):
        return ts.micros / 1_000_000
    return float(ts)


# -- correlation ---------------------------------------------------------------------------------

# A contribution in transit: (time, identity, rule index, value, event id, event). The event is frozen
# to bytes once where it was routed: the correlation stage only needs the event of a contribution that
# completes a correlation (the alert shows it), so the rest cross the shuffle and state as bytes, never
# decoded.
Item = tuple[float, str, int, Any, str, bytes]
# What a routing step emits per key and bundle: whether the contributions can open a window, how many
# there are, and them pickled with their group. The count lets a step drop them without unpickling.
Routed = tuple[bool, int, bytes]


_freeze = event_to_bytes  # an event crosses the shuffle and state as its one serialization
_thaw = event_from_bytes


def _contribution(item: Item) -> Contribution:
    return Contribution(item[0], item[1], item[2], item[3], item[4])


class _Route(beam.DoFn):
    """Batches of matches, or a lower correlation's hits → for the correlation rules of one level, one
    element per key (rule and group) and bundle: (key, (opens, count, pickled (group, items))). The next step
    pays per key, not per event, and the shuffle moves bytes."""

    def __init__(self, plan: CorrelationPlan, level: int) -> None:
        self.plan = plan
        self.level = level

    def setup(self) -> None:
        self.ungrouped = Metrics.counter(NAMESPACE, "correlation_ungrouped")
        self.routes: dict[str, list[tuple[Any, int]]] = {}

    def start_bundle(self) -> None:
        self.buffer: dict[tuple[str, tuple[str, ...]], list[Item]] = {}  # (rule, group) -> contributions
        self.buffered = 0

    def process(self, item: Any) -> Iterator[Any]:
        if isinstance(item, CorrelationHit):
            inner = self.plan.spec(item.rule_id)
            doc: Any = dict(zip(inner.group_by, item.firing.group, strict=True))
            routes = self._routes(item.rule_id)
            self._add(routes, item.rule_id, doc, item.time, item.alert_id, item.alert_id, item.event, {})
        else:
            frozen: dict[int, bytes] = {}  # an event counted by several rules or groups is pickled once
            for rule, event in item:
                routes = self._routes(rule.id)
                if routes:
                    doc = event.view(rule.logsource)[1]
                    self._add(routes, rule.id, doc, event.time, event.identity, event.event_id, event, frozen)
        if self.buffered >= ROUTE_BUFFER:
            for key, earliest, value in self._drain():
                yield TimestampedValue((key, value), earliest)

    def finish_bundle(self) -> Iterator[Any]:
        for key, earliest, value in self._drain():
            yield WindowedValue((key, value), _ts(earliest), (GlobalWindow(),))

    def _opens(self, spec_id: str, items: list[Item]) -> bool:
        """Whether these contributions can open a window: in a temporal_ordered rule only its first
        step can (later steps count only after one); in the other types any event can."""
        spec = self.plan.spec(spec_id)
        return spec.type != "temporal_ordered" or any(x[2] == 0 for x in items)

    def _routes(self, rule_id: str) -> list[tuple[Any, int]]:
        routes = self.routes.get(rule_id)
        if routes is None:
            routes = self.routes[rule_id] = list(self.plan.routes(rule_id, self.level))
        return routes

    def _add(
        self,
        routes: list[tuple[Any, int]],
        rid: str,
        doc: Any,
        when: float,
        identity: str,
        event_id: str,
        event: AuditEvent,
        frozen: dict[int, bytes],
    ) -> None:
        buffer = self.buffer
        blob = None
        for spec, index in routes:
            groups = spec.groups(rid, doc)
            if not groups:
                self.ungrouped.inc()
                continue
            if blob is None:
                blob = frozen.get(id(event))
                if blob is None:
                    blob = frozen[id(event)] = _freeze(event)
            item = (when, identity, index, spec.value(rid, doc), event_id, blob)
            sid = spec.id
            for group in groups:
                items = buffer.get((sid, group))
                if items is None:
                    buffer[sid, group] = [item]
                else:
                    items.append(item)
            self.buffered += len(groups)

    def _drain(self) -> list[tuple[str, float, Routed]]:
        out = []
        for (sid, group), items in self.buffer.items():
            key = f"{sid}{KEY_SEP}{group_text(group)}"
            routed = (self._opens(sid, items), len(items), _dump((group, items)))
            out.append((key, min(x[0] for x in items), routed))
        self.buffer, self.buffered = {}, 0
        return sorted(out, key=lambda x: x[0])


@dataclass
class _GroupMeta:
    group: tuple[str, ...] = ()
    horizon: float = -math.inf  # every contribution up to here has been processed in order
    flush_at: float | None = None
    last_event: bytes | None = None  # the latest event counted, pickled (trigger of closing windows)
    last_time: float = -math.inf
    gc: bool = False  # the expire timer is a final garbage collection


class _Hits:
    """Firings as correlation hits, each with its trigger's event (unpickled here, for the alert)."""

    def _emit(
        self, firings: list[Firing], last: bytes | None, c: Contribution | None, blob: bytes | None
    ) -> Iterator[Any]:
        """The contribution just counted is the trigger if it completed the correlation, else the
        latest event counted (a closing window's last)."""
        for firing in firings:
            trigger = blob if c is not None and firing.trigger == c else last
            if trigger is None:  # cannot happen: a window is never closed before an event was counted
                continue
            self.fired.inc()  # type: ignore[attr-defined]
            yield TimestampedValue(CorrelationHit(firing, _thaw(trigger)), firing.trigger.time)


class _CorrelateComplete(_Hits, beam.DoFn):
    """Bounded input (a batch run), grouped by key: a group's contributions, complete, in event-time
    order, then the end of time. What a stream on time gives once its watermark has passed them all,
    without state: Beam's SDK harness sizes every value its state cache holds (objsize walks the
    globals of every loaded module, ~0.5 ms a read here) and keeps timers per key, which cost a batch
    run more than the evaluation itself."""

    def __init__(self, plan: CorrelationPlan) -> None:
        self.plan = plan

    def setup(self) -> None:
        self.fired = Metrics.counter(NAMESPACE, "correlation_fired")
        self.state_events = Metrics.distribution(NAMESPACE, "correlation_state_events")

    def process(self, element: tuple[str, Iterable[Routed]]) -> Iterator[Any]:
        key, values = element
        values = list(values)
        # A denied-then-allowed group without a denial needs nothing: later steps alone never count.
        if any(opens for opens, _, _ in values):
            yield from self._evaluate(key, [packed for _, _, packed in values])

    def _evaluate(self, key: str, packs: list[bytes]) -> Iterator[Any]:
        spec = self.plan.spec(key.split(KEY_SEP, 1)[0])
        group: tuple[str, ...] = ()
        items: list[Item] = []
        for packed in packs:
            group, part = _load(packed)
            items.extend(part)
        self.state_events.update(len(items))
        items.sort(key=lambda x: (x[0], x[1], x[2]))  # the contributions' order: time, identity, rule
        window = GroupWindow()
        last: bytes | None = None
        for x in items:
            c = _contribution(x)
            firings = window.add(spec, group, c)
            if firings:
                yield from self._emit(firings, last, c, x[5])
            last = x[5]
        if last is not None:
            yield from self._emit(window.advance(spec, group, math.inf), last, None, None)


class _CorrelateGroups(_Hits, beam.DoFn):
    """Unbounded input, per (correlation rule, group) in Beam state: buffer, then evaluate in event-time
    order as the watermark passes (a flush timer at the earliest pending event, an expire timer when
    the window can next change, then one to forget the group)."""

    PENDING = BagStateSpec("pending", BytesCoder())
    WINDOW = ReadModifyWriteStateSpec("window", BytesCoder())
    META = ReadModifyWriteStateSpec("meta", BytesCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, plan: CorrelationPlan, allowed_lateness: float) -> None:
        self.plan = plan
        self.lateness = allowed_lateness

    def setup(self) -> None:
        self.fired = Metrics.counter(NAMESPACE, "correlation_fired")
        self.late = Metrics.counter(NAMESPACE, "late_counted")
        self.dropped = Metrics.counter(NAMESPACE, "late_dropped")
        self.state_events = Metrics.distribution(NAMESPACE, "correlation_state_events")
        self.watermark = Metrics.gauge(NAMESPACE, "correlation_watermark_ms")

    def process(
        self,
        element: tuple[str, Routed],
        pending=beam.DoFn.StateParam(PENDING),
        window_state=beam.DoFn.StateParam(WINDOW),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        expire=beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[Any]:
        key, (_, _, packed) = element
        group, items = _load(packed)
        meta: _GroupMeta = _load(meta_state.read()) or _GroupMeta(group=group)
        horizon = meta.horizon
        late = [x for x in items if x[0] <= horizon]
        fresh = [x for x in items if x[0] > horizon] if late else items
        if late:
            kept = [x for x in late if x[0] >= horizon - self.lateness]
            if len(kept) < len(late):
                self.dropped.inc(len(late) - len(kept))
            if kept:
                # Late but allowed: counted now, in arrival order (the in-order part is already decided).
                self.late.inc(len(kept))
                spec = self.plan.spec(key.split(KEY_SEP, 1)[0])
                window: GroupWindow = _load(window_state.read()) or GroupWindow()
                for x in kept:
                    c = _contribution(x)
                    yield from self._emit(window.add(spec, meta.group, c), meta.last_event, c, x[5])
                    self._remember(spec, meta, c, x[5])
                self._schedule(spec, window, meta, window_state, expire)
        if fresh:
            pending.add(packed if fresh is items else _dump((group, fresh)))
            earliest = min(x[0] for x in fresh)
            if meta.flush_at is None or earliest < meta.flush_at:
                flush.set(_timer_at(earliest))
                meta.flush_at = earliest
            meta.gc = False
        meta_state.write(_dump(meta))

    @on_timer(FLUSH)
    def on_flush(
        self,
        key=beam.DoFn.KeyParam,
        ts=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        window_state=beam.DoFn.StateParam(WINDOW),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        expire=beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[Any]:
        yield from self._advance(key, _seconds(ts), pending, window_state, meta_state, flush, expire)

    @on_timer(EXPIRE)
    def on_expire(
        self,
        key=beam.DoFn.KeyParam,
        ts=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        window_state=beam.DoFn.StateParam(WINDOW),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        expire=beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[Any]:
        yield from self._advance(
            key, _seconds(ts), pending, window_state, meta_state, flush, expire, expiring=True
        )

    def _advance(self, key, now, pending, window_state, meta_state, flush, expire, expiring=False):
        """Event time reached `now`: process what is pending up to it in order, close and prune."""
        self.watermark.set(int(now * 1000))
        meta: _GroupMeta = _load(meta_state.read()) or _GroupMeta()
        spec = self.plan.spec(key.split(KEY_SEP, 1)[0])
        window: GroupWindow = _load(window_state.read()) or GroupWindow()
        items: list[Item] = [x for packed in pending.read() for x in _load(packed)[1]]
        ready = sorted((x for x in items if x[0] <= now), key=lambda x: (x[0], x[1], x[2]))
        rest = [x for x in items if x[0] > now]
        if ready:
            pending.clear()
            if rest:
                pending.add(_dump((meta.group, rest)))
        for x in ready:
            c = _contribution(x)
            yield from self._emit(window.add(spec, meta.group, c), meta.last_event, c, x[5])
            self._remember(spec, meta, c, x[5])
        yield from self._emit(window.advance(spec, meta.group, now), meta.last_event, None, None)
        meta.horizon = max(meta.horizon, now)
        if rest:
            # One flush for everything pending now, once the watermark passes the newest of it.
            meta.flush_at = max(x[0] for x in rest)
            flush.set(_timer_at(meta.flush_at))
        else:
            meta.flush_at = None
        self.state_events.update(len(window))
        if not window.events and not rest:
            window_state.clear()
            if expiring and meta.gc:
                meta_state.clear()  # nothing can change any more, lateness included: forget the group
                return
            # Keep the horizon for the allowed lateness, then forget the group.
            meta.gc = True
            meta.last_event = None
            expire.set(_timer_at(now + self.lateness))
            meta_state.write(_dump(meta))
            return
        self._schedule(spec, window, meta, window_state, expire)
        meta_state.write(_dump(meta))

    def _schedule(self, spec, window: GroupWindow, meta: _GroupMeta, window_state, expire) -> None:
        window_state.write(_dump(window))
        deadline = window.deadline(spec)
        if deadline is not None:
            meta.gc = False
            expire.set(_timer_at(deadline))

    @staticmethod
    def _remember(spec: Any, meta: _GroupMeta, c: Contribution, blob: bytes) -> None:
        # Only a window that closes (lt, lte, eq, neq) fires on an event other than the one just
        # counted: other rules keep no event in state (about a kilobyte per group).
        if not spec.on_arrival and c.time >= meta.last_time:
            meta.last_time = c.time
            meta.last_event = blob


class _DropUnopened(beam.PTransform):
    """Bounded input, a chained level: leave out what matches contribute to a temporal_ordered rule
    where nothing opens a sequence near it. A later step counts only after a first step (often a
    lower correlation: a denied burst) of the same group, and is part of a firing's window only when
    that first step lies within a timespan of it, before or after; everything else the evaluation
    after the shuffle skips or never includes, so dropping it before gives the same alerts and spares
    moving it (a denied-then-allowed rule sees nearly every request as its second step, for every
    identity and all day). The first steps are known only once the lower level has fired, so the
    routed matches of such rules wait for it (FnApiRunner has a stage boundary there anyway, at the
    chain's flatten); those of other rules go on as they are."""

    def __init__(self, plan: CorrelationPlan) -> None:
        super().__init__()
        self.plan = plan

    def expand(self, pcolls: tuple[pvalue.PCollection, pvalue.PCollection]) -> pvalue.PCollection:
        from_matches, from_hits = pcolls
        ordered = {spec.id: spec.timespan for spec in self.plan.specs if spec.type == "temporal_ordered"}
        first_steps = (
            (
                from_matches | "MatchFirstSteps" >> beam.FlatMap(_first_steps, ordered),
                from_hits | "HitFirstSteps" >> beam.FlatMap(_first_steps, ordered),
            )
            | "FirstSteps" >> beam.Flatten()
            | "Once" >> beam.Distinct().with_output_types(tuple[str, float])
        )
        ordered_part, other_part = from_matches | "Ordered" >> beam.Partition(_OrderedFirst(set(ordered)), 2)
        kept = ordered_part | "Drop" >> beam.ParDo(
            _KeepNearFirstSteps(ordered), pvalue.AsMultiMap(first_steps)
        )
        return (kept, other_part) | "Kept" >> beam.Flatten()


class _OrderedFirst(beam.PartitionFn):
    """Contributions to temporal_ordered rules first (they wait for the first steps), the rest second."""

    def __init__(self, ordered: set[str]) -> None:
        self.ordered = ordered

    def partition_for(self, element: Any, num_partitions: int, *args: Any, **kwargs: Any) -> int:
        return 0 if element[0].split(KEY_SEP, 1)[0] in self.ordered else 1


def _first_steps(element: tuple[str, Routed], ordered: dict[str, float]) -> Iterator[tuple[str, float]]:
    """(key, time) of each first step among these contributions (only those that open carry any)."""
    key, (opens, _, packed) = element
    if opens and key.split(KEY_SEP, 1)[0] in ordered:
        _, items = _load(packed)
        for when in {x[0] for x in items if x[2] == 0}:
            yield key, when


class _KeepNearFirstSteps(beam.DoFn):
    def __init__(self, ordered: dict[str, float]) -> None:
        self.ordered = ordered  # temporal_ordered rule id -> timespan

    def setup(self) -> None:
        self.dropped = Metrics.counter(NAMESPACE, "correlation_unopened_dropped")

    def process(self, element: tuple[str, Routed], first_steps: Any) -> Iterator[tuple[str, Routed]]:
        key, (opens, count, packed) = element
        if opens:  # first steps are here: kept whole
            yield element
            return
        times = sorted(first_steps[key])
        if not times:  # no first step in this group at all: dropped without unpickling
            self.dropped.inc(count)
            return
        group, items = _load(packed)
        span = self.ordered[key.split(KEY_SEP, 1)[0]] + 1e-3  # event times carry microseconds
        kept = [x for x in items if _near(times, x[0], span)]
        if len(kept) < len(items):
            self.dropped.inc(len(items) - len(kept))
        if len(kept) == len(items):
            yield element
        elif kept:
            yield key, (False, len(kept), _dump((group, kept)))


def _near(times: list[float], when: float, span: float) -> bool:
    """Whether a time in the sorted `times` lies within `span` of `when`, before or after."""
    i = bisect_left(times, when - span)
    return i < len(times) and times[i] <= when + span


class Correlate(beam.PTransform):
    """Batches of (rule, event) matches → correlation hits, chained correlations included (one stage
    per level). Unbounded input: Beam state and event-time timers per rule and group. Bounded input
    (`bounded`, by default: the input is bounded and the pipeline not streaming): each group grouped
    by key and evaluated once, complete; the same alerts, as the tests check against streaming."""

    def __init__(
        self, plan: CorrelationPlan, allowed_lateness: float = 0.0, bounded: bool | None = None
    ) -> None:
        super().__init__()
        self.plan = plan
        self.allowed_lateness = allowed_lateness
        self.bounded = bounded

    def expand(self, matches: pvalue.PCollection) -> pvalue.PCollection:
        bounded = self.bounded
        if bounded is None:
            streaming = matches.pipeline.options.view_as(StandardOptions).streaming
            bounded = bool(matches.is_bounded) and not streaming
        hits: list[pvalue.PCollection] = []
        for level in range(self.plan.levels):
            # Matches are routed where Detect runs (fused, never encoded); only keyed bytes move on.
            keyed = matches | f"Route{level}" >> beam.ParDo(_Route(self.plan, level)).with_output_types(
                tuple[str, Routed]
            )
            if hits:
                lower = hits[0] if len(hits) == 1 else tuple(hits) | f"Lower{level}" >> beam.Flatten()
                from_hits = lower | f"RouteHits{level}" >> beam.ParDo(
                    _Route(self.plan, level)
                ).with_output_types(tuple[str, Routed])
                if bounded:
                    keyed = (keyed, from_hits) | f"Unopened{level}" >> _DropUnopened(self.plan)
                keyed = (keyed, from_hits) | f"Chain{level}" >> beam.Flatten()
            if bounded:
                level_hits = (
                    keyed
                    | f"Group{level}" >> beam.GroupByKey()
                    | f"Correlate{level}" >> beam.ParDo(_CorrelateComplete(self.plan))
                )
            else:
                level_hits = keyed | f"Correlate{level}" >> beam.ParDo(
                    _CorrelateGroups(self.plan, self.allowed_lateness)
                )
            hits.append(level_hits)
        if not hits:
            return matches.pipeline | "NoCorrelations" >> beam.Create([])
        return hits[0] if len(hits) == 1 else tuple(hits) | "AllHits" >> beam.Flatten()


# -- from matches and hits to alert candidates ---------------------------------------------------


class ToCandidates(beam.PTransform):
    """Matches of rules that alert alone (from Detect's batches), and hits of correlations that do, as
    alert candidates, one element each at its event time."""

    def __init__(self, plan: CorrelationPlan) -> None:
        super().__init__()
        self.plan = plan

    def expand(self, pcolls: tuple[pvalue.PCollection, pvalue.PCollection]) -> pvalue.PCollection:
        matches, hits = pcolls
        plan = self.plan
        singles = matches | "Singles" >> beam.FlatMap(_single_candidate, plan)
        correlations = hits | "Correlations" >> beam.FlatMap(_hit_candidate, plan)
        return (singles, correlations) | "Candidates" >> beam.Flatten()


def _single_candidate(matches: list[Match], plan: CorrelationPlan) -> Iterator[TimestampedValue]:
    for rule, event in matches:
        if plan.alerts_alone(rule.id):
            candidate = Candidate(
                rule, event.time, match_alert_id(rule.id, event), suppression_group(rule, event), event
            )
            yield TimestampedValue(candidate, event.time)


def _hit_candidate(hit: CorrelationHit, plan: CorrelationPlan) -> Iterator[Candidate]:
    if plan.alerts_alone(hit.rule_id):
        info = plan.infos[hit.rule_id]
        yield Candidate(info, hit.time, hit.alert_id, hit.firing.group, hit.event, hit)


# -- suppression ---------------------------------------------------------------------------------


@dataclass
class _RunMeta:
    horizon: float = -math.inf
    flush_at: float | None = None
    run: FoldedRun | None = None
    pending_gc: bool = False
    representative: Candidate | None = None  # the latest folded candidate: the follow-up's content


class _SuppressGroups(beam.DoFn):
    """Per (rule, group): the first alert goes out, repeats within the window fold into one follow-up."""

    PENDING = BagStateSpec("pending", BytesCoder())
    META = ReadModifyWriteStateSpec("meta", BytesCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    CLOSE = TimerSpec("close", TimeDomain.WATERMARK)

    def __init__(self, window: float) -> None:
        self.window = window

    def setup(self) -> None:
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
        meta: _RunMeta = _load(meta_state.read()) or _RunMeta()
        if candidate.time <= meta.horizon:
            # Late: an alert is never dropped; it joins (or opens) a run in arrival order.
            yield from self._offer(meta, candidate, close)
            meta_state.write(_dump(meta))
            return
        pending.add(_dump(candidate))
        if meta.flush_at is None or candidate.time < meta.flush_at:
            flush.set(_timer_at(candidate.time))
            meta.flush_at = candidate.time
        meta_state.write(_dump(meta))

    @on_timer(FLUSH)
    def on_flush(
        self,
        ts=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        close=beam.DoFn.TimerParam(CLOSE),
    ) -> Iterator[Any]:
        yield from self._advance(_seconds(ts), pending, meta_state, flush, close)

    @on_timer(CLOSE)
    def on_close(
        self,
        ts=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        meta_state=beam.DoFn.StateParam(META),
        flush=beam.DoFn.TimerParam(FLUSH),
        close=beam.DoFn.TimerParam(CLOSE),
    ) -> Iterator[Any]:
        yield from self._advance(_seconds(ts), pending, meta_state, flush, close)

    def _advance(self, now, pending, meta_state, flush, close):
        meta: _RunMeta = _load(meta_state.read()) or _RunMeta()
        items = [_load(x) for x in pending.read()]
        ready = sorted((c for c in items if c.time <= now), key=lambda c: (c.time, c.alert_id))
        rest = [c for c in items if c.time > now]
        if ready:
            pending.clear()
            for c in rest:
                pending.add(_dump(c))
        for candidate in ready:
            yield from self._offer(meta, candidate, close)
        if meta.run is not None and now >= meta.run.end:
            yield from self._close_run(meta, now)
        meta.horizon = max(meta.horizon, now)
        if rest:
            meta.flush_at = max(c.time for c in rest)
            flush.set(_timer_at(meta.flush_at))
        else:
            meta.flush_at = None
        if meta.run is None and not rest:
            meta_state.clear()  # nothing open: forget the group (a later alert starts a new run)
            return
        meta_state.write(_dump(meta))

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
        close.set(_timer_at(meta.run.end))
        yield TimestampedValue(candidate, candidate.time)

    def _close_run(self, meta: _RunMeta, now: float) -> Iterator[Any]:
        run, rep = meta.run, meta.representative
        meta.run, meta.representative = None, None
        if run is None or rep is None or not run.count:
            return
        follow_up = Candidate(
            rule=rep.rule,
            time=run.last_seen,
            alert_id=suppressed_alert_id(rep.rule.id, rep.group, run.ids[0]),
            group=rep.group,
            event=rep.event,
            hit=rep.hit,
            suppression=Suppression(
                count=run.count,
                first_seen=iso_time(run.first_seen),
                last_seen=iso_time(run.last_seen),
                alert_ids=list(run.ids[:MAX_FOLDED_IDS]),
                alert_ids_total=run.count,
            ),
        )
        # The follow-up is known only now (the run closed): stamped at its last fold it would be behind
        # the watermark, late for every event-time window downstream. Its document keeps last_seen.
        yield TimestampedValue(follow_up, max(follow_up.time, now))


class Suppress(beam.PTransform):
    """Alert candidates → the first of each rule and group within `window` seconds, plus one follow-up
    folding the repeats (count, first/last seen, their ids), decided in event time then alert id order."""

    def __init__(self, window: float) -> None:
        super().__init__()
        self.window = window

    def expand(self, candidates: pvalue.PCollection) -> pvalue.PCollection:
        return (
            candidates
            | "Key" >> beam.Map(lambda c: (c.key, c)).with_output_types(tuple[str, Any])
            | "Fold" >> beam.ParDo(_SuppressGroups(self.window))
        )


# -- alert documents -----------------------------------------------------------------------------


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


def candidate_alert(candidate: Candidate, plan: CorrelationPlan, soft_limit: int) -> dict[str, Any]:
    """The ECS document of a candidate, under the candidate's alert id."""
    hit = candidate.hit
    return alert_document(
        candidate.rule,
        candidate.event,
        alert_id=candidate.alert_id,
        soft_limit=soft_limit,
        correlation=correlation_fields(hit, plan) if hit is not None else None,
        suppression=candidate.suppression,
    )


def correlation_fields(hit: CorrelationHit, plan: CorrelationPlan) -> dict[str, Any]:
    f = hit.firing
    spec = plan.spec(f.spec_id)
    return {
        "type": spec.type,
        "condition": spec.condition_text(),
        "timespan": spec.timespan,
        "group": dict(zip(spec.group_by, f.group, strict=True)),
        "value": f.value,
        "events": f.events,
        "event_ids": list(f.members),
        "rules": list(f.rules_seen),
        "window": {"start": iso_time(f.window_start), "end": iso_time(f.window_end)},
        "first_event": f.first.identity,
    }


class CandidateAlerts(beam.PTransform):
    """Alert candidates (single-event, correlation, follow-up) → ECS alert documents."""

    def __init__(self, soft_limit: int, plan: CorrelationPlan) -> None:
        super().__init__()
        self.soft_limit = soft_limit
        self.plan = plan

    def expand(self, candidates: pvalue.PCollection) -> pvalue.PCollection:
        return candidates | "Alert" >> beam.ParDo(_CandidateToAlert(self.soft_limit, self.plan))


# -- watermark and processing lag ------------------------------------------------------------------


class _Lag(beam.DoFn):
    """Processing lag (wall clock minus event time) and event-time progress of decoded events."""

    def setup(self) -> None:
        self.lag = Metrics.distribution(NAMESPACE, "processing_lag_ms")
        self.event_time = Metrics.gauge(NAMESPACE, "max_event_time_ms")

    def process(self, events: list[AuditEvent]) -> Iterator[list[AuditEvent]]:
        if events:
            newest = max(e.time for e in events)
            now = wallclock.time()
            self.lag.update(int((now - newest) * 1000))
            self.event_time.set(int(newest * 1000))
        yield events


class MeasureLag(beam.PTransform):
    def expand(self, batches: pvalue.PCollection) -> pvalue.PCollection:
        return batches | "Lag" >> beam.ParDo(_Lag())


class WriteJsonLinesWindowed(beam.PTransform):
    """Streaming file output: one JSON document per line, a file per minute of event time under `directory`
    (batch runs write one file with `WriteJsonLines`).

    Documents may arrive behind the watermark (an allowed-late event's correlation, a suppression
    follow-up): up to `lateness` seconds they still get written, each late firing into a file of its own
    (`...-pane-N`), so nothing already written is overwritten."""

    def __init__(self, directory: str, window: float = 60.0, lateness: float = 0.0) -> None:
        super().__init__()
        self.directory = directory
        self.window = window
        self.lateness = lateness

    def expand(self, docs: pvalue.PCollection) -> pvalue.PDone:
        from apache_beam.io import fileio
        from apache_beam.utils.timestamp import Duration

        return (
            docs
            | "Json" >> beam.Map(lambda doc: orjson.dumps(doc).decode("utf-8"))
            | "Minutes"
            >> beam.WindowInto(FixedWindows(self.window), allowed_lateness=Duration(seconds=self.lateness))
            | "Write"
            >> fileio.WriteToFiles(
                path=self.directory, shards=1, max_writers_per_bundle=0, file_naming=_minute_file_naming
            )
        )


def _minute_file_naming(window, pane, shard_index, total_shards, compression, destination) -> str:
    """`output-<start>-<end>[-pane-N]-<shard>-of-<shards>`: Beam's default naming leaves the pane out, so a
    late firing of a minute would replace that minute's on-time file."""
    start = window.start.to_utc_datetime().isoformat()
    end = window.end.to_utc_datetime().isoformat()
    late = f"-pane-{pane.index}" if pane is not None and pane.index else ""
    suffix = f".{compression}" if compression else ""
    return f"output-{start}-{end}{late}-{int(shard_index or 0):05d}-of-{int(total_shards or 1):05d}{suffix}"
