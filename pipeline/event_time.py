"""Event-time order for the stateful stages (correlation on unbounded input, suppression), per key.

What a key receives ahead of the watermark waits in a bag until the watermark passes it (a flush
timer), then is processed in event-time order, so the result does not depend on arrival order. What
arrives at or before the key's horizon (the event time it has processed up to) is late: each stage
says what that means for it. State holds pickled bytes only.
"""

# Beam declares a DoFn's state and timers as call defaults; the stages hand them to `Pending`.

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from apache_beam.utils.timestamp import Timestamp

from kubesigma.connectors.model.alert import group_text
from kubesigma.connectors.model.frozen import load_pickle

T = TypeVar("T")
KEY_SEP = "\x1f"


def key_of(rule_id: str, group: tuple[str, ...]) -> str:
    """The key a stateful stage keeps state per: a rule and a group."""
    return f"{rule_id}{KEY_SEP}{group_text(group)}"


def rule_of(key: str) -> str:
    return key.split(KEY_SEP, 1)[0]


def dump(value: Any) -> bytes:
    # State holds bytes: the SDK's state cache sizes cached objects deeply on every write, which is
    # slow for nested events and dataclasses, and trivial for bytes.
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def load(data: bytes | None) -> Any:
    """What `dump` wrote (also by an earlier version, whose classes lived elsewhere), or None."""
    return None if data is None else load_pickle(data)


def timer_at(seconds: float) -> Timestamp:
    """A timer time at or after `seconds`: portable runners keep timers in milliseconds, and a timer
    that fired a fraction before its event's time would find it not yet due and re-arm forever."""
    return Timestamp(micros=math.ceil(seconds * 1000) * 1000)


def timestamp(seconds: float) -> Timestamp:
    return Timestamp(micros=round(seconds * 1_000_000))


def seconds(ts: Any) -> float:
    if isinstance(ts, Timestamp):
        return ts.micros / 1_000_000
    return float(ts)


@dataclass
class Progress:
    """How far a key has come in event time; each stage's per-key metadata extends it."""

    horizon: float = -math.inf  # every element up to here has been processed, in order
    flush_at: float | None = None  # what the flush timer is set for; None when nothing is held

    def is_late(self, time: float) -> bool:
        return time <= self.horizon


class Pending(Generic[T]):
    """A key's elements ahead of the watermark: pickled batches in a bag state, released in event-time
    order by a flush timer once the watermark passes them. A stage says how its elements are timed,
    ordered (the sort key, event time first), unpacked from a batch and packed into batches (with
    the key's metadata at hand), and whether what stays after a flush waits for the watermark to pass
    its earliest element (`prompt`: each waits no longer than it must) or its newest (a key fed many
    elements a second then flushes every few seconds, not at every step of the watermark: each flush
    unpacks and packs again all that stays)."""

    def __init__(
        self,
        time: Callable[[T], float],
        order: Callable[[T], Any],
        unpack: Callable[[bytes], Iterable[T]],
        pack: Callable[[Any, list[T]], Iterable[bytes]],
        prompt: bool = True,
    ) -> None:
        self.time, self.order, self.unpack, self.pack = time, order, unpack, pack
        self.next_flush = min if prompt else max

    def hold(self, progress: Progress, bag: Any, flush: Any, packed: bytes, earliest: float) -> None:
        """Keep a batch (its earliest element at `earliest`) until the watermark passes it."""
        bag.add(packed)
        if progress.flush_at is None or earliest < progress.flush_at:
            flush.set(timer_at(earliest))
            progress.flush_at = earliest

    def release(self, progress: Progress, bag: Any, flush: Any, now: float) -> list[T]:
        """Event time reached `now`: what is held up to it, in order, out of the bag. The rest stays,
        with a flush once the watermark passes the earliest of it (`prompt`), else the newest of it."""
        time = self.time
        held = [x for packed in bag.read() for x in self.unpack(packed)]
        ready = sorted((x for x in held if time(x) <= now), key=self.order)
        rest = [x for x in held if time(x) > now]
        if ready:
            bag.clear()
            for packed in self.pack(progress, rest):
                bag.add(packed)
        progress.horizon = max(progress.horizon, now)
        if rest:
            progress.flush_at = self.next_flush(time(x) for x in rest)
            flush.set(timer_at(progress.flush_at))
        else:
            progress.flush_at = None
        return ready
