"""Tail a directory of kube-apiserver audit logs: appended to, and rotated the way the API server does it.

kube-apiserver (lumberjack) renames `audit.log` to `audit-<timestamp>.log` and starts a new
`audit.log`. Files are followed by identity (device, inode, and a fingerprint of their first line, so
a reused inode is a new file), each from the offset already read: a renamed file is finished where it
was left, the new one is read from its start, and no line is read twice. Only whole lines are read;
a line still being written waits for the next poll. Compressed backups (`--audit-log-compress`) are
not followed: they hold lines already read from the plain file before it was compressed.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from kubesigma.connectors.model import RawRecord, Source
from kubesigma.connectors.sources import RECORD_BATCH, RecordBatch, record_time
from kubesigma.connectors.sources.polling import PollTracker, advance_watermark

log = logging.getLogger("kubesigma")

DEFAULT_PATTERN = "audit*.log"
FINGERPRINT_BYTES = 256
MAX_READ_PER_POLL = 64 * 1024 * 1024  # bytes per file per poll: a backlog is caught up over several polls


@dataclass
class FilePosition:
    path: str  # where it was last seen (a rotated file moves)
    offset: int = 0  # bytes read (always at a line end)
    line: int = 0  # lines read


@dataclass
class TailState:
    """What has been read: a position per file identity. Small and picklable (Beam state)."""

    files: dict[str, FilePosition] = field(default_factory=dict)


def _identity(path: Path, st: os.stat_result) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(FINGERPRINT_BYTES)
    except OSError:
        return None
    if b"\n" not in head and len(head) < FINGERPRINT_BYTES:
        return None  # no whole first line yet: the file gets its identity (and is read) once it has one
    first_line = head.split(b"\n", 1)[0]
    return f"{st.st_dev}:{st.st_ino}:{hashlib.sha1(first_line).hexdigest()[:16]}"


def poll(directory: str | Path, state: TailState, pattern: str = DEFAULT_PATTERN) -> Iterator[RawRecord]:
    """The whole lines appended since the last poll, oldest file first; updates `state` as it reads."""
    root = Path(directory)
    try:
        entries = [p for p in root.iterdir() if fnmatch.fnmatch(p.name, pattern) and p.is_file()]
    except FileNotFoundError:
        return
    seen: set[str] = set()
    stats = []
    for path in entries:
        try:
            stats.append((path, path.stat()))
        except FileNotFoundError:
            continue
    # Rotated files first (older mtime), the live audit.log last: lines come out in write order.
    stats.sort(key=lambda ps: (ps[1].st_mtime, ps[0].name != "audit.log", ps[0].name))
    for path, st in stats:
        ident = _identity(path, st)
        if ident is None:
            continue
        seen.add(ident)
        pos = state.files.get(ident)
        if pos is None:
            pos = state.files[ident] = FilePosition(str(path))
        pos.path = str(path)
        if st.st_size <= pos.offset:
            continue
        yield from _read_lines(path, pos)
    # Forget files that are gone (deleted by rotation's max-backup limit).
    for ident in [i for i in state.files if i not in seen]:
        del state.files[ident]


def _read_lines(path: Path, pos: FilePosition) -> Iterator[RawRecord]:
    try:
        with path.open("rb") as handle:
            handle.seek(pos.offset)
            chunk = handle.read(MAX_READ_PER_POLL)
    except OSError:
        return
    end = chunk.rfind(b"\n")
    if end < 0:
        return  # no whole line yet
    uri = path.resolve().as_uri()
    offset = pos.offset
    line = pos.line
    for raw in chunk[: end + 1].split(b"\n")[:-1]:
        line += 1
        if raw.strip():
            yield RawRecord(raw, Source(uri, line=line, offset=offset))
        offset += len(raw) + 1
    pos.offset = offset
    pos.line = line


# -- the unbounded source --------------------------------------------------------------------------


@dataclass
class TailRestriction:
    """The checkpoint of a tail: what has been read (file identity -> offset), since when nothing new
    was found (wall clock, for `max_idle`), and whether this part of the work is finished."""

    state: TailState
    idle_since: float | None = None
    done: bool = False


class _TailTracker(PollTracker[TailRestriction]):
    def completed(self, restriction: TailRestriction) -> float:
        return float(sum(p.offset for p in restriction.state.files.values()))  # bytes read


class _TailRestrictions(RestrictionProvider):
    def initial_restriction(self, element: str) -> TailRestriction:
        return TailRestriction(TailState())

    def create_tracker(self, restriction: TailRestriction) -> _TailTracker:
        return _TailTracker(restriction)

    def restriction_size(self, element: str, restriction: TailRestriction) -> float:
        return 1.0

    def truncate(self, element: str, restriction: TailRestriction) -> None:
        return None  # on drain, stop tailing: nothing is left to finish


RESTRICTIONS = _TailRestrictions()
WATERMARKS = ManualWatermarkEstimator.default_provider()


class _TailDirectory(beam.DoFn):
    """A splittable DoFn: each call polls the directory once, emits what was appended in batches
    stamped with their event time, moves the watermark, and checkpoints (file identity, offset).

    Watermark: the newest event time read minus `max_delay` (audit lines are written when requests
    complete, so a line can carry an earlier `requestReceivedTimestamp` than the one before it);
    while nothing new arrives it follows the wall clock minus `max_delay`, so windows close on an
    idle cluster. It never goes back.
    """

    def __init__(self, pattern: str, interval: float, max_delay: float, max_idle: float | None) -> None:
        self.pattern = pattern
        self.interval = interval
        self.max_delay = max_delay
        self.max_idle = max_idle

    def setup(self) -> None:
        self.lines = Metrics.counter("kubesigma", "tail_lines")
        self.watermark_ms = Metrics.gauge("kubesigma", "source_watermark_ms")
        self.backlog = Metrics.gauge("kubesigma", "tail_backlog_bytes")
        self.announced = False

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        directory: str,
        tracker=beam.DoFn.RestrictionParam(RESTRICTIONS),
        watermark=beam.DoFn.WatermarkEstimatorParam(WATERMARKS),
    ) -> Iterator[Any]:
        current: TailRestriction = tracker.current_restriction()
        if not self.announced:
            files = current.state.files
            log.info(
                "tail: following %s/%s (%s)",
                directory,
                self.pattern,
                # Resuming: a restored checkpoint or savepoint, or a later call of this worker's.
                f"resuming {len(files)} file(s) at {sum(f.line for f in files.values())} lines read"
                if files
                else "from the start of its files",
            )
            self.announced = True
        state = copy.deepcopy(current.state)
        records = list(poll(directory, state, self.pattern))
        now = time.time()
        idle_since = None if records else (current.idle_since or now)
        stop = self.max_idle is not None and idle_since is not None and now - idle_since >= self.max_idle
        if not tracker.try_claim(TailRestriction(state, idle_since, done=stop)):
            return
        newest = None
        for start in range(0, len(records), RECORD_BATCH):
            batch = records[start : start + RECORD_BATCH]
            times = [t for t in map(record_time, (r.data for r in batch)) if t is not None]
            stamp = min(times) if times else now
            if times:
                newest = max(times) if newest is None else max(newest, *times)
            yield TimestampedValue(RecordBatch(batch), stamp)
        if records:
            self.lines.inc(len(records))
        self._advance(watermark, (newest if newest is not None else now) - self.max_delay)
        backlog = _backlog(directory, state, self.pattern)
        self.backlog.set(backlog)
        if stop:
            return  # finished: the watermark goes to the end of time and every window closes
        # Behind (more than one read's worth was waiting): come back at once; caught up: wait.
        tracker.defer_remainder(Duration(seconds=0 if backlog else self.interval))

    def _advance(self, watermark: Any, seconds: float) -> None:
        if advance_watermark(watermark, seconds):
            self.watermark_ms.set(int(seconds * 1000))


def _backlog(directory: str, state: TailState, pattern: str) -> int:
    """Bytes written to followed files but not read yet (the source's processing backlog)."""
    total = 0
    for pos in state.files.values():
        try:
            total += max(0, os.stat(pos.path).st_size - pos.offset)
        except OSError:
            continue
    return total


class TailAuditDirectory(beam.PTransform):
    """An unbounded source of batches of RawRecords from a directory of audit logs, polled every
    `interval` seconds; with `max_idle`, it finishes once nothing new arrived for that long (tests,
    replays of a finished directory), which closes every window and ends the job."""

    def __init__(
        self,
        directory: str,
        pattern: str = DEFAULT_PATTERN,
        interval: float = 1.0,
        max_delay: float = 5.0,
        max_idle: float | None = None,
    ) -> None:
        super().__init__()
        if not Path(directory).is_dir():
            raise ValueError(f"--tail {directory!r}: no such directory")
        self.directory = str(Path(directory).resolve())
        self.pattern = pattern
        self.interval = interval
        self.max_delay = max_delay
        self.max_idle = max_idle

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        return (
            pbegin
            | "Directory" >> beam.Create([self.directory])
            | "Tail"
            >> beam.ParDo(
                _TailDirectory(self.pattern, self.interval, self.max_delay, self.max_idle)
            ).with_output_types(RecordBatch)
        )
