"""Tail a directory of kube-apiserver audit logs: appended to, and rotated the way the API server does it.

kube-apiserver (lumberjack) renames `audit.log` to `audit-<timestamp>.log` and starts a new
`audit.log`. Files are followed by identity (device, inode, and a fingerprint of their first line, so
a reused inode is a new file), each from the offset already read: a renamed file is finished where it
was left, the new one is read from its start, and no line is read twice. Only whole lines are read;
a line still being written waits for the next poll. Compressed backups (`--audit-log-compress`) are
not followed: they hold lines already read from the plain file before it was compressed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from kubesigma.connectors.event import RawRecord, Source

DEFAULT_PATTERN = "audit*.log"
FINGERPRINT_BYTES = 256
MAX_READ_PER_POLL = 64 * 1024 * 1024  # bytes per file per poll: a backlog is caught up over several polls
BATCH = 500


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


class _TailDirectory(beam.DoFn):
    """Keyed by directory: each tick reads what was appended since the last one (state: positions)."""

    STATE = ReadModifyWriteStateSpec("positions", PickleCoder())

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def setup(self) -> None:
        self.lines = Metrics.counter("kubesigma", "tail_lines")

    def process(
        self, element: tuple[str, Any], positions=beam.DoFn.StateParam(STATE)
    ) -> Iterator[list[RawRecord]]:
        directory, _ = element
        state: TailState = positions.read() or TailState()
        batch: list[RawRecord] = []
        count = 0
        for record in poll(directory, state, self.pattern):
            batch.append(record)
            count += 1
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
        if count:
            self.lines.inc(count)
        positions.write(state)


class TailAuditDirectory(beam.PTransform):
    """An unbounded source of batches of RawRecords from a directory of audit logs, polled every
    `interval` seconds (until `stop_after` seconds, for tests and bounded replays)."""

    def __init__(
        self,
        directory: str,
        pattern: str = DEFAULT_PATTERN,
        interval: float = 1.0,
        stop_after: float | None = None,
    ) -> None:
        super().__init__()
        if not Path(directory).is_dir():
            raise ValueError(f"--tail {directory!r}: no such directory")
        self.directory = str(Path(directory).resolve())
        self.pattern = pattern
        self.interval = interval
        self.stop_after = stop_after

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        import time

        start = time.time()
        stop = start + self.stop_after if self.stop_after is not None else None
        impulse = (
            PeriodicImpulse(start_timestamp=start, stop_timestamp=stop, fire_interval=self.interval)
            if stop is not None
            else PeriodicImpulse(start_timestamp=start, fire_interval=self.interval)
        )
        directory = self.directory
        return (
            pbegin
            | "Tick" >> impulse
            | "Directory" >> beam.Map(lambda tick: (directory, tick)).with_output_types(tuple[str, Any])
            | "Tail" >> beam.ParDo(_TailDirectory(self.pattern))
        )
