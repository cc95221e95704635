"""`as_gke_logentry(..., as_written=True)` writes what GKE writes for each stage of a request (the noise
benchmark's GKE day), and the GKE decoder reads those entries; the default one-entry form is unchanged."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.delivery import as_gke_logentry
from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.model import AuditEvent, Source
from support.audit_records import T0, audit_event

AUDIT_ID = "2f1c9a44-5d3e-4b7a-9c1e-0d2f3a4b5c6d"


def _exec(stage: str, when: str) -> dict[str, Any]:
    return audit_event(
        at=T0 + 2 * 86_400,  # 2026-11-30T10:00:00Z
        resource="pods",
        namespace="shop",
        name="web-1",
        subresource="exec",
        uri="/api/v1/namespaces/shop/pods/web-1/exec?command=cat&command=%2Fetc%2Fpasswd&container=web&stdout=true",
        user="bob@acme.dev",
        ip="192.0.2.10",
        user_agent="kubectl/v1.30.4 (darwin/arm64) kubernetes/a51b3b7",
        code=101,
        auditID=AUDIT_ID,
        stage=stage,
        stageTimestamp=when,
    )


def test_a_long_running_request_is_two_entries_sharing_the_operation_id() -> None:
    first = as_gke_logentry(_exec("ResponseStarted", "2026-11-30T10:00:00.020000Z"), as_written=True)
    last = as_gke_logentry(_exec("ResponseComplete", "2026-11-30T10:02:00.000000Z"), as_written=True)
    assert first["operation"] == {"id": AUDIT_ID, "producer": "k8s.io", "first": True}
    assert last["operation"] == {"id": AUDIT_ID, "producer": "k8s.io", "last": True}
    assert first["insertId"] != last["insertId"]
    assert last["timestamp"] == "2026-11-30T10:02:00.000000Z"


def test_the_exec_command_is_the_command_label_and_exec_is_admin_activity() -> None:
    entry = as_gke_logentry(_exec("ResponseStarted", "2026-11-30T10:00:00.020000Z"), as_written=True)
    assert entry["labels"]["command.gke.io/command"] == "cat /etc/passwd"
    assert entry["logName"].endswith("cloudaudit.googleapis.com%2Factivity")
    assert entry["protoPayload"]["methodName"] == "io.k8s.core.v1.pods.exec.get"


def test_a_one_entry_request_takes_the_audit_id_as_insert_id_and_arrives_later() -> None:
    event = _exec("ResponseComplete", "2026-11-30T10:00:00.010000Z")
    event["requestURI"], event["objectRef"] = "/api/v1/namespaces/shop/pods/web-1", {**event["objectRef"]}
    del event["objectRef"]["subresource"]
    entry = as_gke_logentry(event, as_written=True)
    assert entry["insertId"] == AUDIT_ID
    assert entry["operation"] == {"first": True, "id": AUDIT_ID, "last": True, "producer": "k8s.io"}
    assert entry["protoPayload"]["authorizationInfo"][0]["resource"] == "core/v1/namespaces/shop/pods/web-1"
    received = entry["receiveTimestamp"]
    assert len(received.split(".")[1]) == len("123456789Z") and received > entry["timestamp"]


def test_failed_authentication_has_no_principal_and_impersonation_names_the_authority() -> None:
    refused = {**_exec("ResponseStarted", "2026-11-30T10:00:00.001000Z"), "user": {}}
    refused["responseStatus"] = {
        "metadata": {},
        "message": "Authentication failed, attempted: bearer",
        "code": 401,
    }
    entry = as_gke_logentry(refused, as_written=True)
    assert entry["protoPayload"]["authenticationInfo"] == {}
    assert "authorizationInfo" not in entry["protoPayload"] and entry["protoPayload"]["status"]["code"] == 16
    impersonating = {
        **_exec("ResponseStarted", "2026-11-30T10:00:00.001000Z"),
        "impersonatedUser": {"username": "admin"},
    }
    payload = as_gke_logentry(impersonating, as_written=True)["protoPayload"]
    assert payload["authenticationInfo"] == {"principalEmail": "bob@acme.dev", "authoritySelector": "admin"}


def test_the_default_form_is_one_entry_without_the_written_details() -> None:
    entry = as_gke_logentry(_exec("ResponseStarted", "2026-11-30T10:00:00.020000Z"))
    assert entry["operation"] == {"first": True, "id": AUDIT_ID, "last": True, "producer": "k8s.io"}
    assert "command.gke.io/command" not in entry["labels"] and len(entry["insertId"]) == 24
    assert "resource" not in entry["protoPayload"]["authorizationInfo"][0]


def test_the_gke_decoder_reads_both_entries_as_one_request() -> None:
    entries = [
        as_gke_logentry(_exec("ResponseStarted", "2026-11-30T10:00:00.020000Z"), as_written=True),
        as_gke_logentry(_exec("ResponseComplete", "2026-11-30T10:02:00.000000Z"), as_written=True),
    ]
    events = [
        e for entry in entries for e in decode_value(entry, Source("test")) if isinstance(e, AuditEvent)
    ]
    assert len(events) == 2
    assert {e.event_id for e in events} == {entry["insertId"] for entry in entries}
    assert {e.document["auditID"] for e in events} == {AUDIT_ID}
