"""The event-time buffering both stateful stages share, without Beam: a bag and a flush timer stand in."""

from __future__ import annotations

from operator import itemgetter

from apache_beam.utils.timestamp import Timestamp

from kubesigma.pipeline.event_time import Pending, Progress, dump, load, timer_at


class Bag:
    def __init__(self) -> None:
        self.items: list[bytes] = []

    def add(self, value: bytes) -> None:
        self.items.append(value)

    def read(self) -> list[bytes]:
        return list(self.items)

    def clear(self) -> None:
        self.items = []


class Timer:
    def __init__(self) -> None:
        self.at: Timestamp | None = None

    def set(self, at: Timestamp) -> None:
        self.at = at


def alerts() -> Pending[tuple[float, str]]:
    """(time, id) pairs, one a batch, decided by time then id (as suppression decides candidates)."""
    return Pending(
        itemgetter(0), itemgetter(0, 1), lambda packed: [load(packed)], lambda _, rest: map(dump, rest)
    )


def test_a_batch_is_held_with_a_flush_at_its_earliest_time_and_an_earlier_one_moves_it() -> None:
    pending, progress, bag, flush = alerts(), Progress(), Bag(), Timer()
    pending.hold(progress, bag, flush, dump((100.5, "b")), 100.5)
    assert flush.at == timer_at(100.5) and progress.flush_at == 100.5
    pending.hold(progress, bag, flush, dump((200.0, "c")), 200.0)
    assert flush.at == timer_at(100.5)  # a later batch waits for the same flush
    pending.hold(progress, bag, flush, dump((50.0, "a")), 50.0)
    assert flush.at == timer_at(50.0) and progress.flush_at == 50.0


def test_release_gives_what_the_watermark_passed_in_order_and_keeps_the_rest_for_the_next_flush() -> None:
    pending, progress, bag, flush = alerts(), Progress(), Bag(), Timer()
    for time, name in [(120.0, "late"), (100.0, "b"), (300.0, "x"), (100.0, "a"), (250.0, "y")]:
        pending.hold(progress, bag, flush, dump((time, name)), time)
    assert pending.release(progress, bag, flush, 200.0) == [(100.0, "a"), (100.0, "b"), (120.0, "late")]
    assert progress.horizon == 200.0 and progress.is_late(200.0) and not progress.is_late(200.5)
    assert sorted(load(b) for b in bag.items) == [(250.0, "y"), (300.0, "x")]
    # The next flush comes once the earliest of the rest is passed, not the newest: it does not wait.
    assert progress.flush_at == 250.0 and flush.at == timer_at(250.0)
    assert pending.release(progress, bag, flush, 250.0) == [(250.0, "y")]
    assert progress.flush_at == 300.0 and flush.at == timer_at(300.0)
    assert pending.release(progress, bag, flush, 300.0) == [(300.0, "x")]
    assert bag.items == [] and progress.flush_at is None  # nothing held


def test_a_stage_fed_many_elements_a_key_flushes_what_stays_once_the_newest_has_passed() -> None:
    """Not prompt (correlation): one flush for all that stays, not one per step of the watermark."""
    pending = Pending(
        itemgetter(0), itemgetter(0, 1), lambda packed: [load(packed)], lambda _, rest: map(dump, rest), False
    )
    progress, bag, flush = Progress(), Bag(), Timer()
    for time, name in [(100.0, "a"), (300.0, "x"), (250.0, "y")]:
        pending.hold(progress, bag, flush, dump((time, name)), time)
    assert pending.release(progress, bag, flush, 200.0) == [(100.0, "a")]
    assert progress.flush_at == 300.0 and flush.at == timer_at(300.0)
    assert pending.release(progress, bag, flush, 300.0) == [(250.0, "y"), (300.0, "x")]


def test_nothing_due_leaves_the_bag_as_it_was() -> None:
    pending, progress, bag, flush = alerts(), Progress(), Bag(), Timer()
    pending.hold(progress, bag, flush, dump((500.0, "a")), 500.0)
    held = list(bag.items)
    assert pending.release(progress, bag, flush, 400.0) == []
    assert bag.items == held and progress.horizon == 400.0 and progress.flush_at == 500.0


def test_a_timer_set_for_a_fraction_of_a_millisecond_fires_at_or_after_it() -> None:
    """Portable runners keep timers in milliseconds: a timer before its element would re-arm forever."""
    assert timer_at(100.0001) == Timestamp(micros=100_001_000)
    assert timer_at(100.001) == Timestamp(micros=100_001_000)
