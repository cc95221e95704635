"""Records before they become events, and those that never do: a raw record as read, a record skipped on
purpose, and a dead letter (a record that could not be processed, with why and where it came from)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubesigma.connectors.model.event import Source
from kubesigma.connectors.model.frozen import fast_init, fast_pickle
from kubesigma.connectors.redact import redact_raw

# Raw records kept in dead letters are cut to this many bytes.
DEAD_LETTER_RAW_LIMIT = 16 * 1024


@fast_pickle
@fast_init
@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from a source, before decoding: bytes, or an already-parsed JSON value."""

    data: bytes
    source: Source
    value: Any = field(default=None, compare=False)  # parsed JSON when the reader had to parse it


@fast_pickle
@fast_init
@dataclass(frozen=True, slots=True)
class Skipped:
    """A record deliberately ignored (a log shipper's control message); counted, not alerted on."""

    reason: str
    source: Source


@fast_pickle
@fast_init
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be processed, kept with why and where it came from."""

    stage: str  # "read" | "decode" | "sink" ...
    reason: str
    source: Source
    raw: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        """The dead-letter document written out: credentials redacted, the raw record cut to a limit."""
        raw = redact_raw(self.raw[: DEAD_LETTER_RAW_LIMIT * 4])
        cut = len(raw) > DEAD_LETTER_RAW_LIMIT
        return {
            "stage": self.stage,
            "reason": self.reason,
            "source": self.source.as_dict(),
            "raw": raw[:DEAD_LETTER_RAW_LIMIT].decode("utf-8", "backslashreplace"),
            "raw_truncated": cut or len(self.raw) > DEAD_LETTER_RAW_LIMIT * 4,
            "raw_size": len(self.raw),
        }


class RecordBatch(list[RawRecord | DeadLetter]):
    """A batch of what a source read (records, and read failures as dead letters), the shape decoding
    takes. A type of its own so the pipeline can give it a coder that sizes a batch by its records'
    bytes: Beam's fallback sizes sampled batches by pickling every record in them."""

    def byte_size(self) -> int:
        return sum(len(r.data) if isinstance(r, RawRecord) else len(r.raw) for r in self)
