"""What `bench/fuzz.py` found, one behaviour per test: records that crashed a stage or leaked a credential,
each now a dead letter, a skipped record or a clean output."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import orjson
import pytest

from kubesigma.connectors.delivery import as_cloudwatch_envelope
from kubesigma.connectors.formats import decode_carried, decode_record
from kubesigma.connectors.model import KUBERNETES_AUDIT, AuditEvent, DeadLetter, RawRecord, RuleInfo, Skipped
from kubesigma.connectors.model.alert import alert_document, event_document
from kubesigma.connectors.redact import redact_raw
from kubesigma.connectors.sources.files import read_file
from support.audit_records import audit_event, to_event

SECRET = "s3cr3t-planted-by-the-test"
RULE = RuleInfo("r1", "A rule", "high", KUBERNETES_AUDIT)


def outcomes(path: Path) -> list[object]:
    out: list[object] = []
    for item in read_file(str(path)):
        # The pipeline's decode (DecodeAudit, bench/fuzz.py): what it carries must be writable back.
        out.extend([item] if isinstance(item, DeadLetter) else decode_carried(item))
    return out


def one_line(tmp_path: Path, line: bytes) -> list[object]:
    path = tmp_path / "audit.log"
    path.write_bytes(line + b"\n")
    return outcomes(path)


def alert_of(event: AuditEvent) -> bytes:
    return orjson.dumps(alert_document(RULE, event, alert_id="a1", soft_limit=1 << 20))


@pytest.mark.parametrize(
    "depth", [300, 5000, 100_000], ids=["orjson-writable-depth", "orjson-readable", "deeper"]
)
def test_a_record_nested_deeper_than_outputs_can_be_written_is_a_dead_letter(
    tmp_path: Path, depth: int
) -> None:
    """Found as RecursionError in the json module (the fallback for lines orjson refuses) and as
    TypeError "Recursion limit reached" writing the event or its dead letter back out."""
    event = audit_event(1)
    event["requestObject"] = "@@"
    line = orjson.dumps(event).replace(b'"@@"', b"[" * depth + b"1" + b"]" * depth)
    (letter,) = one_line(tmp_path, line)
    assert isinstance(letter, DeadLetter)
    assert "cannot be written back" in letter.reason or "not valid JSON" in letter.reason
    assert orjson.loads(orjson.dumps(letter.as_dict()))["source"]["line"] == 1


def test_an_integer_too_long_for_python_to_convert_is_a_dead_letter(tmp_path: Path) -> None:
    """Found as ValueError (4,300-digit limit) in the json module's fallback parse."""
    line = orjson.dumps(audit_event(1)).replace(b'"code":200', b'"code":1' + b"0" * 5000)
    (letter,) = one_line(tmp_path, line)
    assert isinstance(letter, DeadLetter)
    assert "not valid JSON" in letter.reason


def test_concatenated_values_orjson_cannot_write_back_are_dead_letters(tmp_path: Path) -> None:
    """Two values on one line go through Python's json module, which takes lone surrogates and 65-bit
    integers; the event documents (orjson) could not be written."""
    good = orjson.dumps(audit_event(1))
    surrogate = orjson.dumps(audit_event(2)).replace(b'"mallory"', b'"\\ud800"')
    wide = orjson.dumps(audit_event(3)).replace(b'"code":200', b'"code":' + str(2**70).encode())
    items = one_line(tmp_path, good + surrogate + wide)
    assert [type(i).__name__ for i in items] == ["AuditEvent", "DeadLetter", "DeadLetter"]
    assert all("cannot be written back" in i.reason for i in items[1:] if isinstance(i, DeadLetter))


def test_a_deep_dead_letter_raw_is_redacted_without_failing() -> None:
    raw = (
        b'{"kind":"Secret","data":{"password":"'
        + SECRET.encode()
        + b'"},"x":'
        + b"[" * 600
        + b"]" * 600
        + b"}"
    )
    out = redact_raw(raw)
    assert SECRET.encode() not in out


def test_an_audit_api_version_that_is_a_list_inside_an_event_list_is_a_dead_letter() -> None:
    """Found as TypeError "unhashable type: 'list'" in the audit Event sniff, which an EventList calls
    for each item."""
    item = {**audit_event(1), "apiVersion": ["audit.k8s.io/v1"]}
    record = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [item]}
    data = orjson.dumps(record)
    (letter,) = decode_record(RawRecord(data, to_event(audit_event(1)).source, record))
    assert isinstance(letter, DeadLetter)


@pytest.mark.parametrize("field", ["verb", "namespace"])
def test_an_alert_on_a_record_with_a_list_where_text_belongs_is_written(field: str) -> None:
    """Found as pydantic ValidationError building the alert (event.action, orchestrator.namespace)."""
    doc = audit_event(1)
    if field == "verb":
        doc["verb"] = ["create", "create"]
    else:
        doc["objectRef"]["namespace"] = [None, None]
    alert = orjson.loads(alert_of(to_event(doc)))
    assert alert["kubernetes"]["audit"][field if field == "verb" else "objectRef"]


def test_a_bearer_token_in_the_user_agent_leaves_neither_the_alert_nor_the_events_index() -> None:
    """Found as the planted token in `user_agent.original`: the record copy was redacted, the ECS field
    copied from it was not."""
    event = to_event(audit_event(1, user_agent=f"curl/8.0 Authorization: Bearer {SECRET}"))
    assert SECRET.encode() not in alert_of(event)
    assert SECRET.encode() not in orjson.dumps(event_document(event))
    assert b"curl/8.0" in alert_of(event)


def test_a_secret_inside_json_carried_in_a_string_is_redacted_in_dead_letters() -> None:
    """Found as a Secret's data in the dead letter of a CloudWatch envelope whose log event was refused:
    the message is JSON in a string, which redaction did not look into."""
    inner = audit_event(
        1, request_object={"kind": "Secret", "apiVersion": "v1", "data": {"password": SECRET}}
    )
    envelope = as_cloudwatch_envelope([inner])
    envelope["logEvents"][0]["timestamp"] = "not a number"
    envelope["logGroup"] = ["not", "a", "log", "group"]
    letter = DeadLetter("decode", "refused", to_event(audit_event(1)).source, orjson.dumps(envelope))
    assert SECRET not in orjson.dumps(letter.as_dict()).decode()


def test_a_secret_in_a_last_applied_configuration_annotation_is_redacted() -> None:
    """`kubectl apply` of a Secret keeps the whole manifest, data included, in an annotation."""
    manifest = orjson.dumps({"apiVersion": "v1", "kind": "Secret", "data": {"password": SECRET}}).decode()
    secret = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": manifest}},
        "data": {"password": SECRET},
    }
    event = to_event(audit_event(1, verb="create", request_object=secret))
    assert SECRET.encode() not in alert_of(event)


def test_an_empty_event_list_is_counted_as_skipped(tmp_path: Path) -> None:
    """Found as a record read that gave no outcome: read = normalized + dead_lettered + skipped held,
    but the record was not in `read`."""
    path = tmp_path / "audit.log.gz"
    path.write_bytes(gzip.compress(b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}\n[]\n'))
    items = outcomes(path)
    assert [type(i) for i in items] == [Skipped, Skipped]


def test_a_cut_cloudwatch_message_with_a_huge_integer_is_a_dead_letter() -> None:
    """Found as ValueError from the cut-message recovery (Python's json module on a 5,000-digit number)."""
    message = orjson.dumps(audit_event(1)).decode().replace('"code":200', '"code":1' + "0" * 5000)[:-20]
    envelope = as_cloudwatch_envelope([message])
    data = orjson.dumps(envelope)
    (outcome,) = decode_record(RawRecord(data, to_event(audit_event(1)).source, envelope))
    assert isinstance(outcome, DeadLetter | AuditEvent)
    if isinstance(outcome, AuditEvent):
        orjson.dumps(event_document(outcome))


def test_a_secret_inside_json_in_a_string_of_a_cut_dead_letter_is_redacted() -> None:
    """Found as a Secret's data in a large AKS dead letter: its raw record is cut before redaction, so it
    no longer parses, and the patterns for cut records did not know escaped quotes."""
    inner = audit_event(
        1, request_object={"kind": "Secret", "apiVersion": "v1", "data": {"password": SECRET}}
    )
    record = {
        "category": "kube-audit",
        "properties": {"log": [orjson.dumps(inner).decode()]},
        "pad": "x" * 70_000,
    }
    raw = orjson.dumps(record).replace(b'"pad"', b'"zz"')[:-50_000]  # the padding last, then cut
    letter = DeadLetter("decode", "refused", to_event(audit_event(1)).source, raw)
    assert SECRET not in orjson.dumps(letter.as_dict()).decode()


def test_a_credential_below_a_token_request_status_is_redacted() -> None:
    """Found as a token under a TokenRequest's status (an object there, not the token itself): the
    status was copied with only its `token` member replaced, the rest not walked."""
    status = {"token": "x", "conditions": [{"token": SECRET}]}
    response = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "status": status}
    event = to_event(audit_event(1, verb="create", response_object=response))
    assert SECRET.encode() not in alert_of(event)


@pytest.mark.timeout(300)
def test_redacting_a_long_run_of_backslashes_takes_linear_time() -> None:
    """Found as 6 s of CPU for one 1.8 MB record: a pattern for escaped quotes that began with a repeat
    (`\\\\*"`) was tried at every offset of a run of backslashes. No time is asserted: at this size the
    quadratic version runs for hours, the linear one in milliseconds, so the timeout only catches that."""
    raw = b'{"requestObject":"' + b"\\\\" * 3_000_000 + b'"'  # cut: redacted by pattern
    assert redact_raw(raw).startswith(b'{"requestObject":')


def test_dead_letters_of_a_large_array_of_small_items_hold_only_their_own_bytes() -> None:
    """Found as 1.2 GB allocated for one 756 KB record: orjson reserves 4 KiB for every result, and each
    of 150,000 `null`s kept its serialization in a dead letter."""
    items = [None] * 20_000
    data = orjson.dumps(items)
    tracemalloc.start()
    try:
        letters = list(decode_record(RawRecord(data, to_event(audit_event(1)).source, items)))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(letters) == 20_000 and all(isinstance(d, DeadLetter) for d in letters)
    assert held < 500 * len(letters)  # a DeadLetter, its Source, reason and raw: a few hundred bytes


@pytest.mark.parametrize(
    "millis", [2**64 - 1, float("inf"), float("nan"), -(10**18)], ids=["u64", "inf", "nan", "past"]
)
def test_a_cut_cloudwatch_message_with_an_impossible_log_event_time_is_a_dead_letter(millis: float) -> None:
    """Found as OverflowError: a cut message without its timestamps takes the log event's, which was
    converted without a check."""
    message = orjson.dumps({k: v for k, v in audit_event(1).items() if "Timestamp" not in k}).decode()[:-30]
    envelope = as_cloudwatch_envelope([message])
    envelope["logEvents"][0]["timestamp"] = millis
    (outcome,) = decode_record(RawRecord(b"{}", to_event(audit_event(1)).source, envelope))
    assert isinstance(outcome, DeadLetter)
    assert "timestamp" in outcome.reason
