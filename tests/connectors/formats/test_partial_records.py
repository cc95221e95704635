"""Records as hand-made corpora and exports write them, missing what kube-apiserver and Cloud Logging
always write (auditID, timestamps, `kind`, a LogEntry's resource): decoded, not dropped, each its own
request, named by its content."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, DeadLetter, RawRecord, Source

EXEC = {
    "verb": "create",
    "requestURI": "/api/v1/namespaces/shop/pods/web/exec?command=id&container=web&stdout=true",
    "objectRef": {"resource": "pods", "namespace": "shop", "name": "web", "subresource": "exec"},
    "user": {"username": "alice@example.com"},
    "responseStatus": {"code": 101},
}


def _decode(value: Any) -> list[Any]:
    return list(decode_record(RawRecord(orjson.dumps(value), Source("corpus.jsonl", line=1))))


@pytest.mark.parametrize(
    "record",
    [
        {"kind": "Event", "apiVersion": "audit.k8s.io/v1", **EXEC},  # no auditID, no timestamps
        EXEC,  # no kind either
        {"kind": "Event", **EXEC, "stageTimestamp": "2026-11-28T10:00:00Z"},
    ],
)
def test_an_audit_event_without_an_audit_id_is_decoded_as_its_own_request(record: dict[str, Any]) -> None:
    (event,) = _decode(record)
    assert isinstance(event, AuditEvent)
    assert event.event_id.startswith("sha256:") and event.request_id == event.event_id
    (again,) = _decode(record)
    assert again.event_id == event.event_id  # the same record, the same id
    (other,) = _decode({**record, "verb": "get"})
    assert other.event_id != event.event_id


def test_an_audit_event_without_a_time_takes_the_time_it_was_read() -> None:
    import time

    before = time.time()
    (event,) = _decode(EXEC)
    assert before <= event.time <= time.time()


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({**EXEC, "auditID": 7}, "auditID is int"),
        ({**EXEC, "auditID": "a", "requestReceivedTimestamp": "yesterday"}, "no valid"),
        (
            {"kind": "Event", "apiVersion": "v1", "involvedObject": {"kind": "Pod"}, "reason": "Pulled"},
            "core/v1",
        ),
        ({"verb": "get"}, "matches no registered format"),
    ],
)
def test_what_is_not_an_audit_event_is_still_a_dead_letter(record: dict[str, Any], reason: str) -> None:
    (out,) = _decode(record)
    assert isinstance(out, DeadLetter) and reason in out.reason


def _gke(**payload: Any) -> dict[str, Any]:
    return {
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "k8s.io",
            "methodName": "io.k8s.core.v1.pods.exec.create",
            "resourceName": "core/v1/namespaces/shop/pods/web/exec",
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            "authorizationInfo": [{"granted": True, "permission": "io.k8s.core.v1.pods.exec.create"}],
            "status": {},
            **payload,
        },
        "insertId": "e1",
        "timestamp": "2026-11-28T10:00:00Z",
    }


def test_a_gke_entry_without_its_resource_is_still_a_gke_entry() -> None:
    (event,) = _decode(_gke())
    assert isinstance(event, AuditEvent) and len(event.views) == 2
    k8s = event.document
    assert k8s["verb"] == "create" and k8s["objectRef"]["subresource"] == "exec"
    assert k8s["responseStatus"]["code"] == 101  # an upgraded connection, as kube-apiserver writes it
    assert k8s["annotations"]["authorization.k8s.io/decision"] == "allow"  # from authorizationInfo


def test_a_gke_exec_keeps_its_command_label_for_the_rules() -> None:
    entry = {
        **_gke(),
        "labels": {"command.gke.io/command": "cat /var/run/secrets/kubernetes.io/serviceaccount/token"},
    }
    (event,) = _decode(entry)
    assert event.document["annotations"]["command.gke.io/command"].startswith("cat /var/run/secrets")


def test_gke_names_the_impersonator_and_whom_it_acts_as() -> None:
    auth = {
        "principalEmail": "system:serviceaccount:kyma-system:kube-rbac-proxy",
        "authoritySelector": "admin@example.com",
    }
    (event,) = _decode(_gke(authenticationInfo=auth))
    assert event.document["user"] == {"username": "system:serviceaccount:kyma-system:kube-rbac-proxy"}
    assert event.document["impersonatedUser"] == {"username": "admin@example.com"}
    (alone,) = _decode(_gke(authenticationInfo={"authoritySelector": "system:anonymous"}))
    assert (
        alone.document["user"] == {"username": "system:anonymous"}
        and "impersonatedUser" not in alone.document
    )


def test_the_two_entries_of_a_long_running_gke_request_are_one_request() -> None:
    start = {**_gke(), "operation": {"id": "op-7", "first": True, "producer": "k8s.io"}, "insertId": "s"}
    end = {**_gke(), "operation": {"id": "op-7", "last": True, "producer": "k8s.io"}, "insertId": "e"}
    (first,) = _decode(start)
    (last,) = _decode(end)
    assert (first.document["stage"], last.document["stage"]) == ("ResponseStarted", "ResponseComplete")
    assert first.request_id == last.request_id == "op-7"
    assert (first.event_id, last.event_id) == ("s", "e")  # event.id stays each entry's own


def test_a_gke_non_resource_path_is_a_request_uri_not_an_object() -> None:
    entry = _gke(methodName="io.k8s.get", resourceName="openid/v1/jwks")
    (event,) = _decode(entry)
    assert event.document["requestURI"] == "/openid/v1/jwks" and "objectRef" not in event.document
