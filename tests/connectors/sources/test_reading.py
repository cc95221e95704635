"""Reading and decoding records from files: formats, containers, counting, and refusals with reasons."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, DeadLetter, RawRecord
from kubesigma.connectors.sources.files import MiB, ReadLimits, read_file
from support.audit_records import routine_read


def outcomes(path: Path, limits: ReadLimits = ReadLimits()) -> list[object]:
    out: list[object] = []
    for item in read_file(str(path), limits):
        out.extend([item] if isinstance(item, DeadLetter) else decode_record(item))
    return out


def tally(items: list[object]) -> Counter[str]:
    return Counter(type(i).__name__ for i in items)


def test_falco_traces_give_51_events_and_one_dead_letter_naming_the_bad_record(datasets: Path) -> None:
    items = [o for f in sorted((datasets / "falco-k8s-audit" / "traces").glob("*.json")) for o in outcomes(f)]
    assert len(items) == 52
    assert tally(items) == {"AuditEvent": 51, "DeadLetter": 1}
    (dead,) = [i for i in items if isinstance(i, DeadLetter)]
    assert dead.source.uri.endswith("fal_01_003.json")
    assert dead.source.line == 1
    assert "not a Kubernetes audit event" in dead.reason


def test_pretty_printed_event_list_counts_each_item_once(tmp_path: Path) -> None:
    path = tmp_path / "webhook.json"
    path.write_text(
        json.dumps(
            {
                "kind": "EventList",
                "apiVersion": "audit.k8s.io/v1",
                "items": [routine_read(i) for i in range(5)],
            },
            indent=2,
        )
    )
    items = outcomes(path)
    assert tally(items) == {"AuditEvent": 5}
    assert [e.source.item for e in items if isinstance(e, AuditEvent)] == [0, 1, 2, 3, 4]


def test_several_pretty_printed_documents_one_after_another(tmp_path: Path) -> None:
    path = tmp_path / "docs.json"
    path.write_text("\n".join(json.dumps(routine_read(i), indent=2) for i in range(3)))
    items = outcomes(path)
    assert tally(items) == {"AuditEvent": 3}
    assert [e.source.line for e in items if isinstance(e, AuditEvent)] == [
        1,
        1 + len(json.dumps(routine_read(0), indent=2).splitlines()),
        1 + 2 * len(json.dumps(routine_read(0), indent=2).splitlines()),
    ]


def test_concatenated_values_on_one_line_are_separate_records(tmp_path: Path) -> None:
    path = tmp_path / "firehose"
    path.write_bytes(b"".join(orjson.dumps(routine_read(i)) for i in range(4)))
    assert tally(outcomes(path)) == {"AuditEvent": 4}


def test_multi_member_gzip_reads_every_member(tmp_path: Path) -> None:
    path = tmp_path / "shipped.log.gz"
    with path.open("wb") as handle:
        for member in range(3):
            lines = b"".join(orjson.dumps(routine_read(member * 10 + i)) + b"\n" for i in range(10))
            handle.write(gzip.compress(lines))
    events = [e for e in outcomes(path) if isinstance(e, AuditEvent)]
    assert len(events) == 30
    assert len({e.event_id for e in events}) == 30


def test_corrupt_gzip_keeps_earlier_records_and_dead_letters_the_break(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(orjson.dumps(routine_read(i)) + b"\n" for i in range(2000)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 50)
    items = outcomes(path)
    assert isinstance(items[-1], DeadLetter)
    assert "corrupt compressed data" in items[-1].reason
    # Deflate may turn the garbage into corrupt lines before it fails: those are dead-lettered too,
    # and every record before the damaged block comes through intact and in order.
    events = [i for i in items if isinstance(i, AuditEvent)]
    assert [e.event_id for e in events[:900]] == [routine_read(i)["auditID"] for i in range(900)]


def test_blank_lines_are_not_records_and_missing_final_newline_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"\n" + orjson.dumps(routine_read(1)) + b"\n\n   \n" + orjson.dumps(routine_read(2)))
    items = outcomes(path)
    assert tally(items) == {"AuditEvent": 2}
    assert [e.source.line for e in items if isinstance(e, AuditEvent)] == [2, 5]


def test_a_bare_array_is_a_container_of_records(tmp_path: Path) -> None:
    """As `gcloud logging read --format=json` and exported corpora write them: each item a record."""
    path = tmp_path / "a.log"
    path.write_bytes(orjson.dumps([routine_read(1), routine_read(2), "not a record"]) + b"\n")
    items = outcomes(path)
    assert tally(items) == {"AuditEvent": 2, "DeadLetter": 1}
    assert "not an object" in items[2].reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"kind": "Event", "auditID": "x", "verb": "get"', "not valid JSON"),
        (b"\x00\x01\x02\xff\xfe binary", "binary data"),
        (b'{"kind": "Pod", "metadata": {}}', "unknown record format"),
        (b'{"kind": "Event", "involvedObject": {}}', "core/v1 Event"),
        (b'"just a string"', "not an object"),
    ],
)
def test_garbage_is_dead_lettered_with_a_reason_and_its_line(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    path = tmp_path / "mixed.log"
    path.write_bytes(orjson.dumps(routine_read(1)) + b"\n" + line + b"\n")
    items = outcomes(path)
    assert isinstance(items[0], AuditEvent)
    dead = items[1]
    assert isinstance(dead, DeadLetter)
    assert reason in dead.reason
    assert dead.source.line == 2
    assert dead.as_dict()["source"] == {
        "uri": str(path),
        "line": 2,
        "offset": len(orjson.dumps(routine_read(1))) + 1,
    }


def test_record_over_hard_limit_is_dead_lettered_unparsed_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    big = orjson.dumps(routine_read(1, requestObject={"pad": "x" * (3 * MiB)}))
    path.write_bytes(big + b"\n" + orjson.dumps(routine_read(2)) + b"\n")
    items = outcomes(path, ReadLimits(hard=2 * MiB, soft=MiB))
    assert tally(items) == {"DeadLetter": 1, "AuditEvent": 1}
    assert "over the hard limit" in items[0].reason  # type: ignore[attr-defined]
    assert len(items[0].as_dict()["raw"]) <= 16 * 1024  # type: ignore[attr-defined]


def test_record_under_hard_limit_is_evaluated_whole_however_padded(tmp_path: Path) -> None:
    path = tmp_path / "padded.log"
    padded = routine_read(
        1, requestObject={"pad": "x" * (3 * MiB), "spec": {"containers": [{"image": "xmrig"}]}}
    )
    path.write_bytes(orjson.dumps(padded) + b"\n")
    (event,) = outcomes(path)
    assert isinstance(event, AuditEvent)
    assert event.document["requestObject"]["spec"]["containers"][0]["image"] == "xmrig"
    assert event.size > 3 * MiB


def test_audit_versions_and_missing_api_version_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "versions.log"
    old = routine_read(1)
    del old["apiVersion"]
    path.write_bytes(
        b"\n".join(
            orjson.dumps(e)
            for e in (
                old,
                routine_read(2, apiVersion="audit.k8s.io/v1beta1"),
                routine_read(3, apiVersion="v1"),
            )
        )
    )
    assert tally(outcomes(path)) == {"AuditEvent": 2, "DeadLetter": 1}


def test_event_identity_is_audit_id_and_stage() -> None:
    record = RawRecord(orjson.dumps(routine_read(1, stage="ResponseStarted")), source=None)  # type: ignore[arg-type]
    (event,) = decode_record(record)
    assert isinstance(event, AuditEvent)
    assert event.identity == f"{routine_read(1)['auditID']}/ResponseStarted"
    assert event.time == pytest.approx(1795860000.0)


@pytest.mark.parametrize(
    "value",
    [
        routine_read(1),
        {**routine_read(2), "apiVersion": ["audit.k8s.io/v1"]},  # unhashable: its sniff raised
        {**routine_read(3), "apiVersion": 1},
        {**routine_read(4), "apiVersion": "v1"},
        {**routine_read(5), "kind": ["Event"]},
        {k: v for k, v in routine_read(6).items() if k != "auditID"},
        {**routine_read(7), "auditID": 7},
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [routine_read(8), {"kind": "Pod"}]},
        ["not", "an", "object"],
    ],
)
def test_the_first_formats_one_call_claim_decides_as_sniffing_every_format(value: object) -> None:
    # Native audit Events skip the sniff loop (one call instead of four): the outcome must be the
    # one the loop gives, for records it claims and for records it must leave to other formats.
    from kubesigma.connectors import formats as F
    from kubesigma.connectors.model import Source

    ordered = F.formats()
    assert ordered[0].claim is not None
    source = Source("claim.jsonl", line=1)
    raw = orjson.dumps(value)
    fast = list(decode_record(RawRecord(raw, source)))
    slow = list(F._sniff(value, source, len(raw), raw, F.DecodeContext(), ordered))
    assert [type(o) for o in fast] == [type(o) for o in slow]
    assert fast == slow
