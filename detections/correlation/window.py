"""The event-time window of one correlation rule and one group, fed in event-time order.

Semantics (the same in batch and streaming, because both feed events sorted by time, identity):
* gt/gte conditions and extended temporal conditions are evaluated as each event arrives, over the
  events of the last `timespan` (sliding), so a burst that straddles any fixed boundary still fires.
* lt/lte/eq/neq conditions need the whole window: it opens at the group's first event and is
  evaluated when event time passes its end (`first + timespan`).
* Once a correlation fires, the group's state starts afresh: the next firing needs new events.
* A firing's alert id is a pure function of the rule, the group and the window's first event.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubesigma.connectors.model.alert import correlation_alert_id, iso_time
from kubesigma.connectors.model.frozen import fast_init, fast_pickle
from kubesigma.detections.correlation.spec import CorrelationSpec, evaluate

# Contributing event ids listed in a correlation alert (the total is always given).
MAX_MEMBERS = 50
# A group's window keeps at most this many events (oldest dropped first): bounds state under floods
# that can never satisfy the condition (for example an lt condition on a hot group).
MAX_WINDOW_EVENTS = 10_000


@fast_init  # made per routed contribution, when a group is evaluated
@fast_pickle
@dataclass(frozen=True, slots=True, order=True)
class Contribution:
    """One event (or lower correlation firing) counted by a correlation rule for a group."""

    time: float
    identity: str  # the event's identity, or the alert id of a chained correlation's firing
    rule: int  # index of the matched rule in spec.rules
    value: Any = field(default=None, compare=False)  # the aggregated field's value (value_* types)
    event_id: str | None = field(default=None, compare=False)  # listed in the alert


@fast_pickle
@dataclass(frozen=True, slots=True)
class Firing:
    """A correlation that became true for a group."""

    spec_id: str
    group: tuple[str, ...]
    alert_id: str
    first: Contribution  # the window's first event: with rule and group, the alert's identity
    trigger: Contribution  # the event that made the condition true (or the window's last)
    window_start: float
    window_end: float
    value: float  # the aggregate the condition tested: events, distinct values, rules, sum ...
    events: int  # contributions in the window
    members: tuple[str, ...]  # contributing event ids, capped at MAX_MEMBERS
    rules_seen: tuple[str, ...]


def correlation_fields(firing: Firing, spec: CorrelationSpec) -> dict[str, Any]:
    """What a correlation's alert says about its firing (`kubesigma.correlation` in the document)."""
    return {
        "type": spec.type,
        "condition": spec.condition_text(),
        "timespan": spec.timespan,
        "group": dict(zip(spec.group_by, firing.group, strict=True)),
        "value": firing.value,
        "events": firing.events,
        "event_ids": list(firing.members),
        "rules": list(firing.rules_seen),
        "window": {"start": iso_time(firing.window_start), "end": iso_time(firing.window_end)},
        "first_event": firing.first.identity,
    }


class GroupWindow:
    """State of one (rule, group): the window's events in order, where a closing window began, and the
    requests counted lately (a request is counted once, whatever stages of it the audit log holds)."""

    __slots__ = ("anchor", "counted", "events")

    def __init__(self) -> None:
        self.events: list[Contribution] = []
        self.anchor: float | None = None  # start of the open window (close-evaluated rules)
        # (request, rule index) -> event time, for a timespan: a window cleared by a firing must not
        # count the request's other stages again.
        self.counted: dict[tuple[str, int], float] = {}

    def __len__(self) -> int:
        return len(self.events)

    def __setstate__(self, state: Any) -> None:
        # Slots pickle as (None, {slot: value}); windows kept in state by an earlier version had no
        # `counted`.
        _, slots = state
        self.counted = {}
        for name, value in slots.items():
            setattr(self, name, value)

    def is_empty(self) -> bool:
        """Nothing to evaluate and nothing to remember: the state may be forgotten."""
        return not self.events and not self.counted

    def add(self, spec: CorrelationSpec, group: tuple[str, ...], c: Contribution) -> list[Firing]:
        """Count one event; the firings it causes (closing a window it lies beyond, or its own)."""
        out: list[Firing] = []
        seen = (c.identity, c.rule)
        if seen in self.counted:
            return out  # another stage of a request already counted
        self._forget_counted(c.time - spec.timespan)
        self.counted[seen] = c.time
        if not spec.on_arrival:
            if self.anchor is not None and c.time > self.anchor + spec.timespan:
                out.extend(self._close(spec, group))
            insort(self.events, c)
            self._cap()
            self.anchor = self.events[0].time
            return out
        if spec.type == "temporal_ordered" and c.rule > 0:
            # Only an earlier step within the timespan counts: forget older ones first, as a stream's
            # expiry timer would have by now (else a batch run kept a step a stream had forgotten).
            self._prune(c.time - spec.timespan)
            if not self._has_step_before(c):
                return out  # a later step with no earlier one before it can never complete a sequence
        insort(self.events, c)
        self._prune(self.events[-1].time - spec.timespan)
        self._cap()
        firing = self._evaluate(spec, group, trigger=c)
        if firing is not None:
            self.events.clear()
            out.append(firing)
        return out

    def advance(self, spec: CorrelationSpec, group: tuple[str, ...], now: float) -> list[Firing]:
        """Event time reached `now` (the watermark passed it): close windows, forget expired events."""
        # Event time has passed everything up to `now`: what is a timespan old can go, the bound too.
        self._forget_counted(now - spec.timespan, keep_equal=False)
        if not spec.on_arrival:
            if self.anchor is not None and now >= self.anchor + spec.timespan:
                return self._close(spec, group)
            return []
        # Any later event lies more than a timespan after events up to `now - timespan`.
        self._prune(now - spec.timespan, keep_equal=False)
        return []

    def deadline(self, spec: CorrelationSpec) -> float | None:
        """When event time next matters to this state (a window closes, or every event expires, or
        the requests counted lately may be forgotten)."""
        if not self.events:
            return max(self.counted.values()) + spec.timespan if self.counted else None
        if not spec.on_arrival:
            assert self.anchor is not None
            return self.anchor + spec.timespan
        return self.events[-1].time + spec.timespan

    # -- internals ---------------------------------------------------------------------------------

    def _forget_counted(self, before: float, keep_equal: bool = True) -> None:
        if not self.counted:
            return
        oldest = min(self.counted.values())
        if oldest < before or (not keep_equal and oldest <= before):
            self.counted = {
                k: t for k, t in self.counted.items() if t > before or (keep_equal and t == before)
            }

    def _has_step_before(self, c: Contribution) -> bool:
        want = c.rule - 1
        return any(e.rule == want and e.time < c.time for e in self.events)

    def _prune(self, oldest: float, keep_equal: bool = True) -> None:
        events = self.events
        drop = 0
        # Event-time timers carry microseconds: times within a microsecond of the bound count as on it.
        bound = oldest - 1e-6 if keep_equal else oldest + 1e-6
        while drop < len(events) and events[drop].time < bound:
            drop += 1
        if drop:
            del events[:drop]

    def _cap(self) -> None:
        if len(self.events) > MAX_WINDOW_EVENTS:
            del self.events[: len(self.events) - MAX_WINDOW_EVENTS]

    def _close(self, spec: CorrelationSpec, group: tuple[str, ...]) -> list[Firing]:
        firing = self._evaluate(spec, group, trigger=self.events[-1]) if self.events else None
        self.events.clear()
        self.anchor = None
        return [firing] if firing is not None else []

    def _evaluate(
        self, spec: CorrelationSpec, group: tuple[str, ...], trigger: Contribution
    ) -> Firing | None:
        events = self.events
        kind = spec.type
        first = events[0]
        if kind == "temporal_ordered":
            chosen = _in_order(events, len(spec.rules))
            assert spec.condition is not None
            if not spec.condition.holds(len(chosen)):
                return None
            first = chosen[0]
            value = float(len(chosen))
        elif kind == "temporal":
            seen = {c.rule for c in events}
            if spec.expression is not None:
                if not evaluate(spec.expression, seen):
                    return None
                value = float(len(seen))
            else:
                assert spec.condition is not None
                value = float(len(seen))
                if not spec.condition.holds(value):
                    return None
        else:
            assert spec.condition is not None
            value = _aggregate(kind, events, spec.condition.percentile)
            if math.isnan(value) or not spec.condition.holds(value):
                return None
        members = tuple(dict.fromkeys(c.event_id or c.identity for c in events))
        end = trigger.time if spec.on_arrival else (self.anchor or first.time) + spec.timespan
        return Firing(
            spec_id=spec.id,
            group=group,
            alert_id=correlation_alert_id(spec.id, group, first.identity),
            first=first,
            trigger=trigger,
            window_start=first.time,
            window_end=end,
            value=value,
            events=len(events),
            members=members[:MAX_MEMBERS],
            rules_seen=tuple(spec.rules[i] for i in sorted({c.rule for c in events})),
        )


def _in_order(events: list[Contribution], steps: int) -> list[Contribution]:
    """The longest prefix of the rule sequence found in order (strictly later times), earliest first."""
    chosen: list[Contribution] = []
    for c in events:
        if len(chosen) == steps:
            break
        if c.rule == len(chosen) and (not chosen or c.time > chosen[-1].time):
            chosen.append(c)
    return chosen


def _numbers(events: Iterable[Contribution]) -> list[float]:
    out = []
    for c in events:
        v = c.value
        if isinstance(v, bool) or v is None:
            continue
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return out


def _aggregate(kind: str, events: list[Contribution], percentile: int | None) -> float:
    if kind == "event_count":
        return float(len(events))
    if kind == "value_count":
        return float(len({c.value for c in events if c.value is not None}))
    numbers = _numbers(events)
    if not numbers:
        return math.nan
    if kind == "value_sum":
        return math.fsum(numbers)
    if kind == "value_avg":
        return math.fsum(numbers) / len(numbers)
    # value_percentile / value_median: nearest-rank percentile
    numbers.sort()
    p = 50 if percentile is None else percentile
    rank = max(1, math.ceil(p / 100 * len(numbers)))
    return numbers[rank - 1]


class Correlator:
    """Every group of one correlation rule, fed in event-time order: the reference evaluation that
    the Beam stage reproduces per key, and what tests and the engine-only benchmark use."""

    def __init__(self, spec: CorrelationSpec) -> None:
        self.spec = spec
        self.windows: dict[tuple[str, ...], GroupWindow] = {}

    def add(self, group: tuple[str, ...], c: Contribution) -> list[Firing]:
        window = self.windows.get(group)
        if window is None:
            window = self.windows[group] = GroupWindow()
        return window.add(self.spec, group, c)

    def advance(self, now: float) -> list[Firing]:
        out: list[Firing] = []
        for group in sorted(self.windows):
            window = self.windows[group]
            out.extend(window.advance(self.spec, group, now))
            if window.is_empty():
                del self.windows[group]
        return out

    def state_size(self) -> int:
        return sum(len(w) for w in self.windows.values())
