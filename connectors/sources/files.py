"""Audit records from files: plain or gzip (several members too, as log shippers write them),
line-delimited JSON or whole JSON documents (a pretty-printed EventList, values one after another).

Every record comes out as a `RawRecord` holding its parsed JSON, or as a `DeadLetter` saying why it
could not be read and where it was. Nothing is dropped: blank lines are the only thing skipped, since
they are not records.
"""

from __future__ import annotations

import errno
import glob
import gzip
import io
import json
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from kubesigma.connectors.formats._json import unwritable
from kubesigma.connectors.model import DeadLetter, RawRecord, Source

MiB = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 * MiB
_WHITESPACE = b" \t\r\n"
_source = Source.build  # type: ignore[attr-defined]
_record = RawRecord.build  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Records up to `hard` bytes are evaluated in full; larger ones are dead-lettered unparsed.
    Above `soft`, the copies kubesigma writes out drop bulky request/response objects."""

    hard: int = 16 * MiB
    soft: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.hard <= 0 or self.soft <= 0:
            raise ValueError("record size limits must be positive")
        if self.soft > self.hard:
            raise ValueError(f"soft record limit ({self.soft}) is above the hard limit ({self.hard})")


Read = RawRecord | DeadLetter


# `--input -`: standard input, read where the job runs (a local runner).
STDIN = "-"
STDIN_URI = "<stdin>"


class InputError(ValueError):
    """An input the user named cannot be used at all (nothing matches it, it cannot be listed)."""


def is_remote(path: str) -> bool:
    return "://" in path


def list_inputs(pattern: str) -> list[str]:
    """Every file an `--input` names, sorted: a file, a directory (every file below it, recursively,
    whatever its name: rotations such as audit.log.1 and audit-2026-...log.gz included), a glob, or `-`.

    Entries that are not regular files (a broken symlink, a FIFO, a socket, a directory that cannot be
    listed) are listed too: reading them gives a dead letter saying why, so nothing under a directory
    is skipped without a trace. Raises `InputError` when the pattern names nothing at all."""
    if pattern == STDIN:
        return [STDIN]
    if is_remote(pattern):
        return _list_remote(pattern)
    if os.path.isdir(pattern):
        try:
            os.listdir(pattern)
        except OSError as err:
            raise InputError(f"--input {pattern!r}: cannot list the directory: {err.strerror}") from None
        found = _walk(pattern)
        if not found:
            raise InputError(f"--input {pattern!r}: the directory holds no file")
        return found
    if glob.has_magic(pattern):
        found = []
        for match in sorted(glob.glob(pattern, recursive=True)):
            found.extend(_walk(match) if os.path.isdir(match) else [match])
        if not found:
            raise InputError(f"--input {pattern!r} matches no file")
        return found
    if os.path.lexists(pattern):
        return [pattern]
    raise InputError(f"--input {pattern!r}: no such file or directory")


def _walk(top: str) -> list[str]:
    """Every non-directory entry below `top`; symlinked directories are followed once each (a link back
    up the tree is not a loop); directories that cannot be listed are entries themselves."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except OSError:
            found.append(folder)  # reading it dead-letters it with the reason
            continue
        for entry in children:
            try:
                is_dir = entry.is_dir()  # follows symlinks; False for a broken one
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(entry.path)
            else:
                found.append(entry.path)
    return sorted(found)


def _list_remote(pattern: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    def match(p: str) -> list[str]:
        try:
            results = FileSystems.match([p])
        except Exception as err:  # Beam raises its own BeamIOError with the scheme's error inside
            raise InputError(f"--input {pattern!r}: cannot list it: {err}") from None
        return sorted(m.path for r in results for m in r.metadata_list)

    found = match(pattern)
    if not found and not glob.has_magic(pattern):
        found = match(pattern.rstrip("/") + "/**")  # a bucket folder: every object below it
    if not found:
        raise InputError(f"--input {pattern!r} matches no file")
    return found


def open_file(path: str) -> IO[bytes]:
    """Open a local or remote (gs://, s3://) file, uncompressed. A local path must be a regular file:
    a FIFO or a device would block or never end (it is opened without waiting, then refused)."""
    if path == STDIN:
        return sys.stdin.buffer
    if not is_remote(path):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise OSError(errno.EINVAL, f"not a regular file ({_kind(mode)})", path)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb", buffering=_CHUNK)
        except BaseException:
            os.close(fd)
            raise
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a special file"


def read_file(path: str, limits: ReadLimits = ReadLimits()) -> Iterator[Read]:
    """Every record of one file, in order. A file that cannot be opened (gone since it was listed, a
    broken symlink, permission denied, not a regular file) is one dead letter naming the reason."""
    uri = STDIN_URI if path == STDIN else path
    try:
        raw_stream = open_file(path)
    except OSError as err:
        yield DeadLetter("read", f"cannot read the file: {_why(err, path)}", Source(uri))
        return
    except Exception as err:  # a remote filesystem's own errors (Beam wraps them)
        yield DeadLetter("read", f"cannot read the file: {type(err).__name__}: {err}", Source(uri))
        return
    with raw_stream:
        yield from read_opened(raw_stream, uri, limits, path)


def read_opened(raw_stream: IO[bytes], uri: str, limits: ReadLimits, path: str = "") -> Iterator[Read]:
    """Every record of an open file (plain or gzip, sniffed), in order."""
    stream: IO[bytes] = raw_stream if hasattr(raw_stream, "peek") else io.BufferedReader(raw_stream)  # type: ignore[type-var]
    try:
        gzipped = stream.peek(2)[:2] == GZIP_MAGIC  # type: ignore[attr-defined]
    except OSError as err:
        yield DeadLetter("read", f"cannot read the file: {_why(err, path or uri)}", Source(uri))
        return
    if gzipped:
        # GzipFile reads member after member; its small reads keep records before a corrupt spot.
        stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
    yield from read_stream(stream, uri, limits, compressed=gzipped)


def _why(err: OSError, path: str) -> str:
    """An OSError in words, with a broken symlink named as one (open says only 'No such file')."""
    if err.errno == errno.ENOENT and os.path.islink(path):
        return f"broken symbolic link to {os.readlink(path)!r}"
    if err.errno == errno.ENOENT:
        return "no such file (removed or renamed since it was listed)"
    return err.strerror or str(err)


def read_stream(stream: IO[bytes], uri: str, limits: ReadLimits, *, compressed: bool) -> Iterator[Read]:
    reader = _LineReader(stream, uri, limits)
    try:
        yield from reader.records()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        # Corrupt or cut gzip data: keep what came before, dead-letter the rest with where it broke.
        yield reader.broken(
            f"corrupt compressed data after byte {reader.offset} of the decompressed stream: {err}"
        )
    except OSError as err:
        what = "corrupt compressed data or a read error" if compressed else "read error"
        yield reader.broken(f"{what} after byte {reader.offset}: {err.strerror or err}")


class _LineReader:
    """Reads lines with the hard limit enforced while reading, switching to document mode when the
    file turns out to hold pretty-printed JSON."""

    def __init__(self, stream: IO[bytes], uri: str, limits: ReadLimits) -> None:
        self.stream = stream
        self.uri = uri
        self.limits = limits
        self.offset = 0  # byte offset of the next unread line
        self.line_no = 0
        self.pending = b""  # the line being read, for the dead letter if decompression fails

    def broken(self, reason: str) -> DeadLetter:
        """The rest of the file, which could not be read, as one dead letter at where it broke."""
        return DeadLetter(
            "read", reason, Source(self.uri, line=self.line_no + 1, offset=self.offset), self.pending
        )

    def _next_line(self) -> tuple[bytes, int] | None:
        """The next line (without its newline) and its full length; oversized lines are cut."""
        limit = self.limits.hard + 1
        line = self.stream.readline(limit)
        if not line:
            return None
        length = len(line)
        if len(line) >= limit and not line.endswith(b"\n"):
            # Over the hard limit: drain the rest of the line without keeping it.
            self.pending = line[: 64 * 1024]
            while True:
                more = self.stream.readline(_CHUNK)
                length += len(more)
                if not more or more.endswith(b"\n"):
                    break
            self.pending = b""
            return line, length
        return line.rstrip(b"\r\n"), length

    def records(self) -> Iterator[Read]:
        first = True
        while True:
            start = self.offset
            got = self._next_line()
            if got is None:
                return
            line, length = got
            self.offset += length
            self.line_no += 1
            # Positional `build`s: this runs for every line, and keywords cost as much as the rest.
            source = _source(self.uri, self.line_no, start, None, None)
            if length > self.limits.hard:
                yield DeadLetter(
                    "read",
                    f"record of {length} bytes is over the hard limit of {self.limits.hard} bytes",
                    source,
                    line,
                )
                continue
            try:
                # JSON allows whitespace around a document: no stripped copy of every line to parse.
                yield _record(line, source, orjson.loads(line))
                first = False
                continue
            except orjson.JSONDecodeError as err:
                error = err
            stripped = line.strip(_WHITESPACE)
            if not stripped:
                continue
            if first and stripped[:1] in (b"{", b"["):
                documents = self._try_documents(line, source)
                if documents is not None:
                    yield from documents
                    return
            first = False
            yield from _split_concatenated(line, source, error)

    def _try_documents(self, first_line: bytes, source: Source) -> Iterator[Read] | None:
        """Read the rest as whole JSON documents, if the first line starts a multi-line document."""
        rest = _read_up_to(self.stream, self.limits.hard * 4)
        text_bytes = first_line + b"\n" + rest
        text = text_bytes.decode("utf-8", "replace")
        decoder = json.JSONDecoder()
        pos = _skip_ws(text, 0)
        try:
            decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):  # invalid, too deep, or an integer too long to convert
            # Not a document file after all (a cut first line): go on line by line, re-reading what the
            # probe consumed before the rest of the stream.
            self.stream = io.BufferedReader(_Chained(rest, self.stream), buffer_size=_CHUNK)
            return self._lines_after_first(first_line, source)
        return _documents(text, source, self.limits, tail=self.stream)

    def _lines_after_first(self, first_line: bytes, source: Source) -> Iterator[Read]:
        yield from _split_concatenated(first_line, source, None)
        yield from self.records()


def _read_up_to(stream: IO[bytes], limit: int) -> bytes:
    """At most `limit` bytes, read a chunk at a time: one `read(limit)` reserves the whole limit (64 MiB
    by default) even for a file of a few bytes."""
    chunks = []
    left = limit
    while left > 0:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Chained(io.RawIOBase):
    """Bytes already read, then the stream they came from."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        self._head = io.BytesIO(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._head.read(len(buffer)) or self._tail.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _documents(text: str, first: Source, limits: ReadLimits, tail: IO[bytes]) -> Iterator[Read]:
    """JSON values one after another, each a record sourced by its byte offset and line."""
    if tail.read(1):
        yield DeadLetter(
            "read",
            f"document file larger than {limits.hard * 4} bytes; only documents within it were read",
            Source(first.uri, offset=len(text.encode())),
        )
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    while pos < len(text):
        line = text.count("\n", 0, pos) + 1
        offset = len(text[:pos].encode())
        source = Source(first.uri, line=line, offset=offset)
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            rest = text[pos:].encode()
            yield DeadLetter("read", f"invalid JSON document: {err.msg} (line {err.lineno})", source, rest)
            return
        except (ValueError, RecursionError) as err:
            yield DeadLetter(
                "read", f"invalid JSON document: {_first_line(err)}", source, text[pos:].encode()
            )
            return
        chunk = text[pos:end].encode()
        refused = unwritable(value)
        if refused is not None:
            yield DeadLetter("read", f"JSON document {refused}", source, chunk)
        elif len(chunk) > limits.hard:
            yield DeadLetter(
                "read",
                f"document of {len(chunk)} bytes is over the hard limit of {limits.hard} bytes",
                source,
                chunk,
            )
        else:
            yield RawRecord(chunk, source, value)
        pos = _skip_ws(text, end)


_TIMESTAMP_PREFIX = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?\s+(?=[{\[])")


def _checked(chunk: bytes, source: Source, value: Any) -> Read:
    """A value Python's json module parsed, as a record if the pipeline can carry it (it takes NaN and
    lone surrogates, which orjson refuses)."""
    refused = unwritable(value)
    if refused is not None:
        return DeadLetter("read", f"not valid JSON: {refused}", source, chunk)
    return RawRecord(chunk, source, value)


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _split_concatenated(line: bytes, source: Source, error: Exception | None) -> Iterator[Read]:
    """A line holding several JSON values back to back (`{..}{..}`, as Firehose concatenates) gives one
    record per value; anything else that does not parse is one dead letter."""
    text = line.decode("utf-8", "replace").strip()
    decoder = json.JSONDecoder()
    values = []
    pos = 0
    try:
        while pos < len(text):
            value, end = decoder.raw_decode(text, pos)
            values.append((text[pos:end], value))
            pos = _skip_ws(text, end)
    except (ValueError, RecursionError):  # invalid, too deep, or an integer too long to convert
        values = []
    prefixed = _TIMESTAMP_PREFIX.match(text)
    if not values and prefixed:
        # `2026-11-28T10:00:00.000Z {...}`: CloudWatch Logs' export to S3 puts each event's time first.
        try:
            value = json.loads(text[prefixed.end() :])
        except (ValueError, RecursionError):
            pass
        else:
            yield _checked(text[prefixed.end() :].encode(), source, value)
            return
    if len(values) >= 2:
        for index, (chunk, value) in enumerate(values):
            yield _checked(chunk.encode(), source.at_item(index), value)
        return
    reason = f"not valid JSON: {error}" if error else "not valid JSON"
    if b"\x00" in line or not _mostly_text(line):
        reason = "binary data, not a JSON record"
    yield DeadLetter("read", reason, source, line)


def _mostly_text(data: bytes) -> bool:
    sample = data[:4096]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        # A cut multi-byte character at the end of the sample is still text.
        return err.start >= len(sample) - 3
    return True
