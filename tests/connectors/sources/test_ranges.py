"""Input split for worker processes: byte ranges of a JSON-lines file read as the whole file is."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson

from kubesigma.connectors.model import DeadLetter, RawRecord
from kubesigma.connectors.sources import ranges
from kubesigma.connectors.sources.files import ReadLimits, read_file
from kubesigma.connectors.sources.ranges import split_inputs
from support.audit_records import routine_read


def as_read(item: RawRecord | DeadLetter) -> tuple[str, object, object]:
    if isinstance(item, DeadLetter):
        return ("dead", item.reason, item.source)
    return ("record", item.data, item.source)


def write_lines(path: Path, n: int) -> Path:
    """JSON lines with what real logs hold besides records: a cut line, a blank line, CRLF endings."""
    with path.open("wb") as out:
        for i in range(n):
            line = orjson.dumps(routine_read(i))
            if i % 97 == 5:
                line = line[: len(line) // 2]  # a record cut by a crash
            out.write(line + (b"\r\n" if i % 11 == 0 else b"\n"))
            if i % 53 == 0:
                out.write(b"\n")
    return path


def test_ranges_of_a_jsonlines_file_read_the_same_records_and_positions_as_the_whole_file(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(ranges, "MIN_RANGE", 1024)
    log = write_lines(tmp_path / "audit.log", 3000)
    shares = split_inputs([str(log)], 3)
    parts = sorted((p for share in shares for p in share), key=lambda p: p.start)
    assert len(parts) == 3 and [p.start > 0 for p in parts] == [False, True, True]
    assert parts[0].end == parts[1].start and parts[1].end == parts[2].start and parts[2].end is None
    whole = [as_read(item) for item in read_file(str(log))]
    by_parts = [as_read(item) for part in parts for item in part.read(ReadLimits())]
    assert by_parts == whole
    assert sum(kind == "dead" for kind, _, _ in whole) > 0  # the cut records are dead letters in both


def test_gzip_and_document_files_go_whole_to_one_worker(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ranges, "MIN_RANGE", 1024)
    zipped = tmp_path / "audit.log.gz"
    zipped.write_bytes(gzip.compress(write_lines(tmp_path / "plain.log", 2000).read_bytes()))
    listing = tmp_path / "eventlist.json"
    items = [routine_read(i) for i in range(2000)]
    listing.write_text(json.dumps({"kind": "EventList", "items": items}, indent=2))
    shares = split_inputs([str(zipped), str(listing)], 2)
    parts = [p for share in shares for p in share]
    assert sorted(p.path for p in parts) == sorted([str(zipped), str(listing)])
    assert all(p.start == 0 and p.end is None for p in parts)
    assert all(len(share) == 1 for share in shares)  # one file each: balanced by bytes


def test_small_files_are_not_cut(tmp_path: Path) -> None:
    log = write_lines(tmp_path / "audit.log", 100)
    assert [len(share) for share in split_inputs([str(log)], 2)] == [1, 0]
