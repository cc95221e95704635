"""Input split for several worker processes: whole files, and byte ranges of large JSON-lines files.

A range starts and ends at line starts, and the line at each cut parses as a JSON record, so a worker
reading [start, end) meets no partial record and no document probe. Records read from a range carry
the same source (line number, byte offset) as when the whole file is read in one go.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

from kubesigma.connectors.sources.files import (
    _WHITESPACE,
    GZIP_MAGIC,
    MiB,
    Read,
    ReadLimits,
    _LineReader,
    read_file,
)

# A plain file is cut into ranges only from this size: below it, a worker's start-up costs more.
MIN_RANGE = 4 * MiB
_SCAN = 8 * MiB


@dataclass(frozen=True, slots=True)
class InputPart:
    """A file, or the byte range [start, end) of one (end None: to the end of the file)."""

    path: str
    start: int = 0
    end: int | None = None
    size: int = 0  # bytes, for balancing

    def read(self, limits: ReadLimits) -> Iterator[Read]:
        if self.start == 0 and self.end is None:
            return read_file(self.path, limits)
        return _read_range(self.path, self.start, self.end, limits)


def split_inputs(paths: Sequence[str], workers: int) -> list[list[InputPart]]:
    """The files spread over `workers` lists of about equal bytes (some may be empty)."""
    parts: list[InputPart] = []
    for path in paths:
        parts.extend(_parts_of(path, workers))
    shares: list[list[InputPart]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for part in sorted(parts, key=lambda p: -p.size):  # largest first, each to the least loaded worker
        i = loads.index(min(loads))
        shares[i].append(part)
        loads[i] += part.size
    return shares


def _parts_of(path: str, workers: int) -> list[InputPart]:
    if not os.path.isfile(path):  # remote (gs://, s3://) or special: read whole, by one worker
        return [InputPart(path)]
    size = os.path.getsize(path)
    if workers < 2 or size < 2 * MIN_RANGE:
        return [InputPart(path, size=size)]
    with open(path, "rb") as handle:
        if handle.peek(2)[:2] == GZIP_MAGIC or not _is_record(handle.readline(_SCAN)):
            return [InputPart(path, size=size)]  # gzip cannot be entered mid-stream; documents must be whole
        cuts = [0]
        for k in range(1, workers):
            cut = _cut_after(handle, size * k // workers)
            if cut is not None and cut > cuts[-1]:
                cuts.append(cut)
    ends: list[int | None] = [*cuts[1:], None]
    return [InputPart(path, start, end, (end or size) - start) for start, end in zip(cuts, ends, strict=True)]


def _is_record(line: bytes) -> bool:
    stripped = line.strip(_WHITESPACE)
    if not stripped.startswith(b"{"):
        return False
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return False
    return True


def _cut_after(handle: IO[bytes], offset: int) -> int | None:
    """The start of the first line after `offset` that holds a whole JSON record (None: none soon)."""
    handle.seek(offset)
    handle.readline()  # the rest of the line `offset` falls in
    for _ in range(1000):
        at = handle.tell()
        line = handle.readline(_SCAN)
        if not line:
            return None
        if line.endswith(b"\n") and _is_record(line):
            return at
    return None


class _Window(io.RawIOBase):
    """The bytes [start, end) of a file, as a stream."""

    def __init__(self, handle: IO[bytes], end: int | None, start: int) -> None:
        self.handle = handle
        self.left = None if end is None else end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self.left is not None:
            view = view[: self.left]
        n = self.handle.readinto(view)  # type: ignore[attr-defined]
        if self.left is not None:
            self.left -= n
        return n


def _read_range(path: str, start: int, end: int | None, limits: ReadLimits) -> Iterator[Read]:
    with open(path, "rb", buffering=0) as handle:
        lines_before = 0
        while handle.tell() < start:
            chunk = handle.read(min(_SCAN, start - handle.tell()))
            if not chunk:
                break
            lines_before += chunk.count(b"\n")
        stream = io.BufferedReader(_Window(handle, end, start), buffer_size=MiB)
        reader = _LineReader(stream, path, limits)
        # Positions as if the file were read from its start (alerts and dead letters name them).
        reader.offset, reader.line_no = start, lines_before
        # Plain bytes only (gzip files are never cut): no decompression error to dead-letter here.
        yield from reader.records()
