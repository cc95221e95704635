"""Tailing a kube-apiserver audit log directory: appends, rotation, partial lines, no line read twice, and
the checkpoint (what was read) the splittable DoFn hands from one poll to the next."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from kubesigma.connectors.sources.tail import (
    TailAuditDirectory,
    TailRestriction,
    TailState,
    _TailTracker,
    poll,
    record_time,
)
from support.audit_records import T0, audit_event


def line(n: int) -> bytes:
    return orjson.dumps(audit_event(n, at=T0 + n, name=f"s-{n}")) + b"\n"


def ids(records) -> list[int]:
    return [int(orjson.loads(r.data)["objectRef"]["name"][2:]) for r in records]


def append(path: Path, *numbers: int) -> None:
    with path.open("ab") as handle:
        for n in numbers:
            handle.write(line(n))


def test_appended_lines_are_read_once(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = TailState()
    append(log, 0, 1)
    assert ids(poll(tmp_path, state)) == [0, 1]
    append(log, 2)
    assert ids(poll(tmp_path, state)) == [2]
    assert ids(poll(tmp_path, state)) == []


def test_a_line_being_written_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = TailState()
    append(log, 0)
    partial = line(1)
    with log.open("ab") as handle:
        handle.write(partial[:40])
    assert ids(poll(tmp_path, state)) == [0]
    with log.open("ab") as handle:
        handle.write(partial[40:])
    assert ids(poll(tmp_path, state)) == [1]


def test_rotation_finishes_the_renamed_file_and_reads_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = TailState()
    append(log, 0, 1)
    assert ids(poll(tmp_path, state)) == [0, 1]
    append(log, 2)  # written just before rotation, not yet polled
    rotated = tmp_path / "audit-2026-11-28T10-05-00.000.log"
    os.rename(log, rotated)
    os.utime(rotated, (T0, T0))  # older than the new file, as after a real rotation
    append(log, 3, 4)
    assert ids(poll(tmp_path, state)) == [2, 3, 4]
    assert ids(poll(tmp_path, state)) == []


def test_records_say_where_they_were_read(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    append(log, 0, 1)
    records = list(poll(tmp_path, TailState()))
    assert [r.source.line for r in records] == [1, 2]
    assert records[1].source.offset == len(line(0))
    assert records[0].source.uri.endswith("/audit.log")


def test_deleted_backups_are_forgotten(tmp_path: Path) -> None:
    state = TailState()
    backup = tmp_path / "audit-2026-11-28T09-00-00.000.log"
    append(backup, 0)
    list(poll(tmp_path, state))
    backup.unlink()
    list(poll(tmp_path, state))
    assert state.files == {}


def test_other_files_are_ignored(tmp_path: Path) -> None:
    append(tmp_path / "audit.log", 0)
    append(tmp_path / "audit-2026-11-28T09-00-00.000.log.gz", 1)
    (tmp_path / "notes.txt").write_text("hello\n")
    assert ids(poll(tmp_path, TailState())) == [0]


def test_event_time_is_read_from_the_raw_line_without_parsing_it() -> None:
    assert record_time(line(7)) == pytest.approx(T0 + 7, abs=1e-6)
    entry = b'{"insertId":"x","timestamp":"2026-11-28T10:00:03.5Z","protoPayload":{}}'
    assert record_time(entry) == pytest.approx(T0 + 3.5)
    assert record_time(b'{"kind":"Event"}') is None


def test_a_checkpoint_hands_the_positions_read_to_the_next_poll(tmp_path: Path) -> None:
    append(tmp_path / "audit.log", 0, 1)
    tracker = _TailTracker(TailRestriction(TailState()))
    state = TailState()
    assert ids(poll(tmp_path, state)) == [0, 1]
    assert tracker.try_claim(TailRestriction(state))
    primary, residual = tracker.try_split(0)
    tracker.check_done()  # the primary is finished: this poll's work is done
    assert primary.done and not residual.done
    append(tmp_path / "audit.log", 2)
    assert ids(poll(tmp_path, residual.state)) == [2]
    assert not tracker.try_claim(TailRestriction(state))  # nothing more to claim after a checkpoint


def test_the_directory_is_never_split_only_checkpointed() -> None:
    tracker = _TailTracker(TailRestriction(TailState()))
    assert tracker.try_split(0.5) is None


def test_a_stop_claim_finishes_the_tail() -> None:
    tracker = _TailTracker(TailRestriction(TailState()))
    assert tracker.try_claim(TailRestriction(TailState(), idle_since=1.0, done=True))
    tracker.check_done()
    assert tracker.try_split(0) is None


def test_a_missing_directory_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no-such-dir"):
        TailAuditDirectory(str(tmp_path / "no-such-dir"))
