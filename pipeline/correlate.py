"""Sigma correlation rules in Beam: matches → correlation hits, per correlation rule and group, in event time.

    matches | Correlate(plan) → CorrelationHit          (one stage per level of chained correlations)

Matches are routed where Detect runs: each becomes a contribution to a (correlation rule, group) key.
Each key's contributions are evaluated in event-time order (time, identity, rule), so batch and
streaming give the same alerts. Bounded input groups each key and evaluates it once, complete;
unbounded input keeps Beam state and event-time timers per key (`event_time.Pending`), and forgets a
key once its window can no longer change. A contribution older than what its key already processed is
late: counted up to the allowed lateness (in arrival order), dropped beyond it (metric `late_dropped`).
"""

# Beam declares state and timers as call defaults (`pending=DoFn.StateParam(PENDING)`).

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import apache_beam as beam
import zstandard
from apache_beam import pvalue
from apache_beam.coders import BytesCoder
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow, TimestampedValue
from apache_beam.utils.windowed_value import WindowedValue

from kubesigma.connectors.model import AuditEvent
from kubesigma.connectors.model.event import event_from_bytes, event_to_bytes
from kubesigma.detections.correlation import (
    Contribution,
    CorrelationPlan,
    CorrelationSpec,
    Firing,
    GroupWindow,
)
from kubesigma.pipeline.event_time import (
    Pending,
    Progress,
    dump,
    key_of,
    load,
    rule_of,
    seconds,
    timer_at,
    timestamp,
)
from kubesigma.pipeline.metrics import NAMESPACE

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


# -- contributions in transit ----------------------------------------------------------------------

# A contribution travels from where it was routed to where it is counted (across the shuffle, and in
# state while it waits for the watermark) as a row, its event frozen to bytes once:
#
#     (time, identity, rule index, value, event id, event)
#
# in pickled lists per key, with the key's group (a pack). Rows stay plain tuples on purpose: pickle
# writes them in C, where a class instance (a named tuple too) costs Python calls each way; most routed
# contributions (later steps of sequences nothing opened) are dropped unread; and a streaming key reads
# what it holds again at every flush (typed rows, a named tuple or a Contribution with its event, made
# the unbounded stage 10-20% slower). Rows are read through the names below; where one is counted it
# becomes a `Contribution` and its event, thawed only if it completes a correlation (the alert shows it).
Row = tuple[float, str, int, Any, str, bytes]
TIME: Final = 0
RULE: Final = 2
_in_order = itemgetter(0, 1, 2)  # time, identity, rule: the order a key's contributions are counted in

# What a routing step emits per key and bundle: whether the contributions can open a window, how many
# there are, and their pack. The count lets a step drop them without unpacking.
Routed = tuple[bool, int, bytes]


# A pack is compressed (zstd, fast level) above a few rows' size: the frozen events of one key's rows
# differ in little more than ids and times, so a pack shrinks ~20-fold, for a few microseconds per row
# each way. What a batch run groups (every contribution, held by the runner until its stage runs), a
# worker sends to the job, and a stream holds in state is that much smaller.
_COMPRESS_ABOVE = 2048
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_codecs = threading.local()  # zstd (de)compressors are not thread-safe: one of each per thread


def _pack(group: tuple[str, ...], rows: list[Row]) -> bytes:
    data = dump((group, rows))
    if len(data) <= _COMPRESS_ABOVE:
        return data
    compress = getattr(_codecs, "compress", None)
    if compress is None:
        compress = _codecs.compress = zstandard.ZstdCompressor(level=1).compress
    packed: bytes = compress(data)
    return packed


def _unpack(packed: bytes) -> tuple[tuple[str, ...], list[Row]]:
    if packed[:4] == _ZSTD_MAGIC:  # else a pickle (small, or kept in state by an earlier version)
        decompress = getattr(_codecs, "decompress", None)
        if decompress is None:
            decompress = _codecs.decompress = zstandard.ZstdDecompressor().decompress
        packed = decompress(packed)
    group, rows = load(packed)
    return group, rows


def _counted(row: Row) -> tuple[Contribution, bytes]:
    """A row as it is counted: the contribution, and its event (frozen)."""
    time, identity, rule, value, event_id, event = row
    return Contribution(time, identity, rule, value, event_id), event


class _Route(beam.DoFn):
    """Batches of matches, or a lower correlation's hits → for the correlation rules of one level, one
    element per key (rule and group) and bundle: (key, (opens, count, pack)). The next step pays per
    key, not per event, and the shuffle moves bytes."""

    def __init__(self, plan: CorrelationPlan, level: int) -> None:
        self.plan = plan
        self.level = level

    def setup(self) -> None:
        self.ungrouped = Metrics.counter(NAMESPACE, "correlation_ungrouped")
        self.routes: dict[str, list[tuple[Any, int]]] = {}

    def start_bundle(self) -> None:
        self.buffer: dict[tuple[str, tuple[str, ...]], list[Row]] = {}  # (rule, group) -> contributions
        self.buffered = 0

    def process(self, item: Any) -> Iterator[Any]:
        if isinstance(item, CorrelationHit):
            firing = item.firing
            inner = self.plan.spec(firing.spec_id)
            doc: Any = dict(zip(inner.group_by, firing.group, strict=True))
            routes = self._routes(firing.spec_id)
            self._add(
                routes, firing.spec_id, doc, item.time, firing.alert_id, firing.alert_id, item.event, {}
            )
        else:
            frozen: dict[int, bytes] = {}  # an event counted by several rules or groups is frozen once
            for rule, event in item:
                routes = self._routes(rule.id)
                if routes:
                    doc = event.view(rule.logsource)[1]
                    # A request counts once: its stages share the request's id.
                    self._add(
                        routes, rule.id, doc, event.time, event.request_id, event.event_id, event, frozen
                    )
        if self.buffered >= ROUTE_BUFFER:
            for key, earliest, value in self._drain():
                yield TimestampedValue((key, value), earliest)

    def finish_bundle(self) -> Iterator[Any]:
        for key, earliest, value in self._drain():
            yield WindowedValue((key, value), timestamp(earliest), (GlobalWindow(),))

    def _opens(self, spec_id: str, rows: list[Row]) -> bool:
        """Whether these contributions can open a window: in a temporal_ordered rule only its first
        step can (later steps count only after one); in the other types any event can."""
        spec = self.plan.spec(spec_id)
        return spec.type != "temporal_ordered" or any(row[RULE] == 0 for row in rows)

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
                    blob = frozen[id(event)] = event_to_bytes(event)
            row: Row = (when, identity, index, spec.value(rid, doc), event_id, blob)
            sid = spec.id
            for group in groups:
                rows = buffer.get((sid, group))
                if rows is None:
                    buffer[sid, group] = [row]
                else:
                    rows.append(row)
            self.buffered += len(groups)

    def _drain(self) -> list[tuple[str, float, Routed]]:
        out = []
        for (sid, group), rows in self.buffer.items():
            routed = (self._opens(sid, rows), len(rows), _pack(group, rows))
            out.append((key_of(sid, group), min(row[TIME] for row in rows), routed))
        self.buffer, self.buffered = {}, 0
        return sorted(out, key=lambda x: x[0])


# -- evaluation ------------------------------------------------------------------------------------


class _Hits:
    """Firings as correlation hits, each with its trigger's event (thawed here, for the alert)."""

    fired: Any  # the DoFn's correlation_fired counter

    def _hits(
        self,
        firings: list[Firing],
        last: bytes | None,
        c: Contribution | None = None,
        event: bytes | None = None,
    ) -> Iterator[Any]:
        """The contribution just counted (`c`, with its `event`) is the trigger if it completed the
        correlation, else the latest event counted (a closing window's last)."""
        for firing in firings:
            trigger = event if c is not None and firing.trigger == c else last
            if trigger is None:  # cannot happen: a window is never closed before an event was counted
                continue
            self.fired.inc()
            yield TimestampedValue(CorrelationHit(firing, event_from_bytes(trigger)), firing.trigger.time)


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
        spec = self.plan.spec(rule_of(key))
        group: tuple[str, ...] = ()
        rows: list[Row] = []
        for packed in packs:
            group, part = _unpack(packed)
            rows.extend(part)
        self.state_events.update(len(rows))
        rows.sort(key=_in_order)
        window = GroupWindow()
        last: bytes | None = None
        for row in rows:
            c, event = _counted(row)
            firings = window.add(spec, group, c)
            if firings:
                yield from self._hits(firings, last, c, event)
            last = event
        if last is not None:
            yield from self._hits(window.advance(spec, group, math.inf), last)


@dataclass
class _GroupMeta(Progress):
    """What a key keeps besides its window and pending contributions (state `meta`)."""

    group: tuple[str, ...] = ()
    last_event: bytes | None = None  # the latest event counted, frozen (trigger of closing windows)
    last_time: float = -math.inf
    gc: bool = False  # the expire timer is a final garbage collection


def _pending_contributions() -> Pending[Row]:
    """A key's contributions wait in state as packs (one per routed element, or what was left over)."""

    def pack_rest(meta: _GroupMeta, rest: list[Row]) -> Iterator[bytes]:
        if rest:
            yield _pack(meta.group, rest)

    # A correlation key may be fed most of the stream (every allowed request of one address): what stays
    # after a flush waits for the newest of it, or every step of the watermark re-packed it all.
    return Pending(itemgetter(TIME), _in_order, lambda packed: _unpack(packed)[1], pack_rest, prompt=False)


class _CorrelateGroups(_Hits, beam.DoFn):
    """Unbounded input, per (correlation rule, group) in Beam state: hold, then evaluate in event-time
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
        self.held = _pending_contributions()
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
        group, rows = _unpack(packed)
        meta: _GroupMeta = load(meta_state.read()) or _GroupMeta(group=group)
        horizon = meta.horizon
        late = [row for row in rows if row[TIME] <= horizon]
        fresh = [row for row in rows if row[TIME] > horizon] if late else rows
        if late:
            kept = [row for row in late if row[TIME] >= horizon - self.lateness]
            if len(kept) < len(late):
                self.dropped.inc(len(late) - len(kept))
            if kept:
                # Late but allowed: counted now, in arrival order (the in-order part is already decided).
                self.late.inc(len(kept))
                spec = self.plan.spec(rule_of(key))
                window: GroupWindow = load(window_state.read()) or GroupWindow()
                for row in kept:
                    c, event = _counted(row)
                    yield from self._hits(window.add(spec, meta.group, c), meta.last_event, c, event)
                    self._remember(spec, meta, c, event)
                self._schedule(spec, window, meta, window_state, expire)
        if fresh:
            earliest = min(row[TIME] for row in fresh)
            self.held.hold(meta, pending, flush, packed if not late else _pack(group, fresh), earliest)
            meta.gc = False
        meta_state.write(dump(meta))

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
        yield from self._advance(key, seconds(ts), pending, window_state, meta_state, flush, expire)

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
            key, seconds(ts), pending, window_state, meta_state, flush, expire, expiring=True
        )

    def _advance(self, key, now, pending, window_state, meta_state, flush, expire, expiring=False):
        """Event time reached `now`: count what is pending up to it in order, close and prune."""
        self.watermark.set(int(now * 1000))
        meta: _GroupMeta = load(meta_state.read()) or _GroupMeta()
        spec = self.plan.spec(rule_of(key))
        window: GroupWindow = load(window_state.read()) or GroupWindow()
        for row in self.held.release(meta, pending, flush, now):
            c, event = _counted(row)
            yield from self._hits(window.add(spec, meta.group, c), meta.last_event, c, event)
            self._remember(spec, meta, c, event)
        yield from self._hits(window.advance(spec, meta.group, now), meta.last_event)
        self.state_events.update(len(window))
        if window.is_empty() and meta.flush_at is None:  # nothing counted, nothing pending
            window_state.clear()
            if expiring and meta.gc:
                meta_state.clear()  # nothing can change any more, lateness included: forget the group
                return
            # Keep the horizon for the allowed lateness, then forget the group.
            meta.gc = True
            meta.last_event = None
            expire.set(timer_at(now + self.lateness))
            meta_state.write(dump(meta))
            return
        self._schedule(spec, window, meta, window_state, expire)
        meta_state.write(dump(meta))

    def _schedule(self, spec, window: GroupWindow, meta: _GroupMeta, window_state, expire) -> None:
        window_state.write(dump(window))
        deadline = window.deadline(spec)
        if deadline is not None:
            meta.gc = False
            expire.set(timer_at(deadline))

    @staticmethod
    def _remember(spec: CorrelationSpec, meta: _GroupMeta, c: Contribution, event: bytes) -> None:
        # Only a window that closes (lt, lte, eq, neq) fires on an event other than the one just
        # counted: other rules keep no event in state (about a kilobyte per group).
        if not spec.on_arrival and c.time >= meta.last_time:
            meta.last_time = c.time
            meta.last_event = event


# -- bounded input: later steps no first step opened -------------------------------------------------


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
        return 0 if rule_of(element[0]) in self.ordered else 1


def _first_steps(element: tuple[str, Routed], ordered: dict[str, float]) -> Iterator[tuple[str, float]]:
    """(key, time) of each first step among these contributions (only those that open carry any)."""
    key, (opens, _, packed) = element
    if opens and rule_of(key) in ordered:
        _, rows = _unpack(packed)
        for when in {row[TIME] for row in rows if row[RULE] == 0}:
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
        if not times:  # no first step in this group at all: dropped without unpacking
            self.dropped.inc(count)
            return
        group, rows = _unpack(packed)
        span = self.ordered[rule_of(key)] + 1e-3  # event times carry microseconds
        kept = [row for row in rows if _near(times, row[TIME], span)]
        if len(kept) < len(rows):
            self.dropped.inc(len(rows) - len(kept))
        if len(kept) == len(rows):
            yield element
        elif kept:
            yield key, (False, len(kept), _pack(group, kept))


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
        def route(level: int) -> pvalue.PCollection:
            # Matches are routed where Detect runs (fused, never encoded); only keyed bytes move on.
            return matches | f"Route{level}" >> beam.ParDo(_Route(self.plan, level)).with_output_types(
                tuple[str, Routed]
            )

        return self._levels(matches, route)

    def _levels(self, pcoll: pvalue.PCollection, routed: Any) -> pvalue.PCollection:
        """Every level's hits: `routed(level)` gives the level's contributions of matches, keyed."""
        bounded = self.bounded
        if bounded is None:
            streaming = pcoll.pipeline.options.view_as(StandardOptions).streaming
            bounded = bool(pcoll.is_bounded) and not streaming
        hits: list[pvalue.PCollection] = []
        for level in range(self.plan.levels):
            keyed = routed(level)
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
            return pcoll.pipeline | "NoCorrelations" >> beam.Create([])
        return hits[0] if len(hits) == 1 else tuple(hits) | "AllHits" >> beam.Flatten()


class RouteMatches(beam.PTransform):
    """Batches of matches → one level's keyed contributions (what `CorrelateRouted` takes): routing is
    per event, so it can run where Detect runs, in another process (pipeline/shards.py)."""

    def __init__(self, plan: CorrelationPlan, level: int) -> None:
        super().__init__()
        self.plan = plan
        self.level = level

    def expand(self, matches: pvalue.PCollection) -> pvalue.PCollection:
        return matches | beam.ParDo(_Route(self.plan, self.level)).with_output_types(tuple[str, Routed])


class CorrelateRouted(Correlate):
    """`Correlate` over contributions already routed (`RouteMatches`), one keyed collection per level."""

    def expand(self, routed: Any) -> pvalue.PCollection:  # a tuple of PCollections, one per level
        levels = tuple(routed)
        if len(levels) != self.plan.levels:
            raise ValueError(f"{len(levels)} routed collections for {self.plan.levels} correlation levels")
        if not levels:
            return routed.pipeline | "NoCorrelations" >> beam.Create([])
        return self._levels(levels[0], levels.__getitem__)
