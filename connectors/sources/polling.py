"""What the polling sources (the tailed audit directory, Kafka, Kinesis) share as splittable DoFns: a
restriction that is a checkpoint of what was read, handed from one poll to the next, and a watermark
that only moves forward."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Generic, Protocol, TypeVar

from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker
from apache_beam.utils.timestamp import Timestamp


class Checkpoint(Protocol):
    """A dataclass restriction: what has been read, and whether this part of the work is finished."""

    @property
    def done(self) -> bool: ...


R = TypeVar("R", bound=Checkpoint)


class PollTracker(RestrictionTracker, Generic[R]):
    """Each poll claims the positions it read up to; a checkpoint hands them to the next poll. Only
    checkpoints split a restriction (fraction 0): a followed source is one ordered stream of records."""

    def __init__(self, restriction: R) -> None:
        self.restriction = restriction
        self.claimed: R | None = None

    def current_restriction(self) -> R:
        return self.restriction

    def try_claim(self, position: R) -> bool:
        if self.restriction.done:
            return False
        self.claimed = position
        if position.done:
            self.restriction = position
        return True

    def try_split(self, fraction_of_remainder: float) -> tuple[R, R] | None:
        if self.restriction.done or fraction_of_remainder > 0:
            return None
        base: Any = self.claimed or self.restriction
        primary = replace(base, done=True)
        residual = copy.deepcopy(replace(base, done=False))
        self.restriction = primary
        return primary, residual

    def check_done(self) -> None:
        if not self.restriction.done:
            raise ValueError("a poll stopped without a checkpoint of what it read")

    def completed(self, restriction: R) -> float:
        """Work done so far, for the runner's progress (bytes, records); 0 when unknown."""
        return 0.0

    def current_progress(self) -> RestrictionProgress:
        done = self.completed(self.claimed or self.restriction)
        return RestrictionProgress(completed=done, remaining=0.0 if self.restriction.done else 1.0)

    def is_bounded(self) -> bool:
        return False


def advance_watermark(estimator: Any, seconds: float) -> bool:
    """Moves a ManualWatermarkEstimator to `seconds` unless that would move it back; True if it moved."""
    proposed = Timestamp(micros=int(seconds * 1_000_000))
    current = estimator.current_watermark()
    if current is None or proposed > current:
        estimator.set_watermark(proposed)
        return True
    return False
