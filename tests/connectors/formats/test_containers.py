"""Records inside what tools wrap them in: a JSON array, a Pub/Sub message, a line of CloudWatch Logs'
export to S3 (the event's time, then its message)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, DeadLetter, RawRecord, Source
from kubesigma.connectors.sources.files import read_file

EVENT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "auditID": "6e1a6fd6-57a1-4d4b-9d2c-1b8f0e5a9c11",
    "stage": "ResponseComplete",
    "verb": "get",
    "requestURI": "/api/v1/namespaces/shop/secrets/db",
    "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db"},
    "user": {"username": "alice@example.com"},
    "responseStatus": {"code": 200},
    "requestReceivedTimestamp": "2026-11-28T10:00:00.000000Z",
}


def _outcomes(value: object) -> list[object]:
    return list(decode_record(RawRecord(orjson.dumps(value), Source("in.json", line=1))))


def test_a_json_array_is_one_record_per_item() -> None:
    other = {**EVENT, "auditID": "a2"}
    out = _outcomes([EVENT, other, {"kind": 0}])
    assert [type(o).__name__ for o in out] == ["AuditEvent", "AuditEvent", "DeadLetter"]
    assert [o.source.item for o in out] == [0, 1, 2]


def test_a_pub_sub_push_request_carries_its_record_in_base64() -> None:
    data = base64.b64encode(orjson.dumps(EVENT)).decode()
    push = {
        "message": {"data": data, "messageId": "1234", "attributes": {}},
        "subscription": "projects/p/subscriptions/s",
    }
    (event,) = _outcomes(push)
    assert isinstance(event, AuditEvent) and event.event_id == EVENT["auditID"]
    assert event.source.message_id == "1234"
    (bad,) = _outcomes({"message": {"data": "not base64!", "messageId": "9"}})
    assert isinstance(bad, DeadLetter) and "base64" in bad.reason


def test_a_cloudwatch_export_line_starts_with_the_event_time(tmp_path: Path) -> None:
    path = tmp_path / "000000.gz.txt"
    path.write_text(f"2026-11-28T10:00:00.123Z {json.dumps(EVENT)}\nnot json at all\n")
    reads = list(read_file(str(path)))
    assert isinstance(reads[0], RawRecord) and reads[0].value["auditID"] == EVENT["auditID"]
    assert isinstance(reads[1], DeadLetter)
