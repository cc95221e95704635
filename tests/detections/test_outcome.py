"""The request's outcome decides: one normalized field (`event.outcome`), the same answer for rules
(the Sigma mapping in detections/normalized.py) and for alerts (the logsource profiles' ECS outcome),
in every record format."""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

import orjson
import pytest
import yaml

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import (
    AWS_CLOUDTRAIL,
    GCP_AUDIT,
    KUBERNETES_AUDIT,
    AuditEvent,
    RawRecord,
    Source,
)
from kubesigma.connectors.model.logsources import outcome_of, profile_of
from kubesigma.detections.engine import RuleLoadError, RuleSet


def _rule(n: int, logsource: dict[str, str], detection: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "title": f"outcome rule {n}",
            "id": f"00000000-0000-0000-0000-{n:012d}",
            "status": "test",
            "logsource": logsource,
            "detection": detection,
            "level": "low",
        }
    )


K8S = {"product": "kubernetes", "service": "audit"}
GCP = {"product": "gcp", "service": "gcp.audit"}
AWS = {"product": "aws", "service": "cloudtrail"}


@cache
def _rules(logsource: tuple[tuple[str, str], ...]) -> RuleSet:
    ls = dict(logsource)
    return RuleSet.from_yaml(
        [
            _rule(1, ls, {"sel": {"event.outcome": "success"}, "condition": "sel"}),
            _rule(2, ls, {"sel": {"event.outcome": "failure"}, "condition": "sel"}),
            _rule(3, ls, {"sel": {"event.outcome": ["success", "failure"]}, "condition": "sel"}),
            # No outcome named: the gate makes it a success rule.
            _rule(
                4,
                ls,
                {"sel": {"kind|exists": True}, "other": {"kind|exists": False}, "condition": "sel or other"},
            ),
        ]
    )


def _verdicts(logsource: dict[str, str], view: Any, doc: dict[str, Any]) -> tuple[bool, bool, bool, bool]:
    fired = {r.id[-1] for r in _rules(tuple(logsource.items())).match_document(view, doc)}
    return ("1" in fired, "2" in fired, "3" in fired, "4" in fired)


CODES = (None, 101, 200, 201, 403, 404, 409, 500)
DECISIONS = (None, "allow", "forbid")
STAGES = (None, "RequestReceived", "ResponseStarted", "ResponseComplete")
URIS = ("/api/v1/namespaces/shop/pods", "/api/v1/namespaces/shop/pods?dryRun=All&fieldManager=kubectl")


@pytest.mark.parametrize(
    ("code", "decision", "stage", "uri"), list(itertools.product(CODES, DECISIONS, STAGES, URIS))
)
def test_kubernetes_rules_and_alerts_agree_on_the_outcome(code, decision, stage, uri) -> None:
    doc: dict[str, Any] = {"kind": "Event", "verb": "create", "requestURI": uri}
    if code is not None:
        doc["responseStatus"] = {"code": code}
    if decision is not None:
        doc["annotations"] = {"authorization.k8s.io/decision": decision}
    if stage is not None:
        doc["stage"] = stage
    ecs = profile_of(KUBERNETES_AUDIT).outcome(doc)
    success, failure, either, gated = _verdicts(K8S, KUBERNETES_AUDIT, doc)
    assert failure == (ecs == "failure")
    # success: not refused, written after the API server decided, and not a dry run (nothing changed)
    assert success == (ecs != "failure" and stage != "RequestReceived" and "dryRun=" not in uri)
    assert gated == success
    assert either == (success or failure)
    assert ecs == (
        "failure" if (code or 0) >= 400 or decision == "forbid" else "success" if code else "unknown"
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"status": {}}, "success"),
        ({"status": {"code": 0}}, "success"),
        ({"status": {"code": 7, "message": "PERMISSION_DENIED"}}, "failure"),
        ({"status": {}, "authorizationInfo": [{"granted": False, "permission": "x"}]}, "failure"),
        ({"status": {}, "authorizationInfo": [{"granted": True, "permission": "x"}]}, "success"),
        (
            {"status": {}, "response": {"status": "Failure", "code": 403, "reason": "VIOLATES_POLICY"}},
            "failure",
        ),
        ({"status": {}, "response": {"status": {"phase": "Pending"}}}, "success"),
        ({}, "unknown"),
    ],
)
def test_gcp_rules_and_alerts_agree_on_the_outcome(payload: dict[str, Any], expected: str) -> None:
    doc = {"protoPayload": {"serviceName": "container.googleapis.com", **payload}}
    assert profile_of(GCP_AUDIT).outcome(doc) == expected
    success, failure, either, gated = _verdicts(GCP, GCP_AUDIT, doc)
    assert (success, failure) == (expected != "failure", expected == "failure")
    assert gated == success and either


@pytest.mark.parametrize(("error", "expected"), [(None, "success"), ("AccessDenied", "failure")])
def test_cloudtrail_rules_and_alerts_agree_on_the_outcome(error: str | None, expected: str) -> None:
    doc: dict[str, Any] = {"eventSource": "eks.amazonaws.com", "eventName": "CreateAccessEntry"}
    if error:
        doc["errorCode"] = error
    assert profile_of(AWS_CLOUDTRAIL).outcome(doc) == expected
    success, failure, _, gated = _verdicts(AWS, AWS_CLOUDTRAIL, doc)
    assert (success, failure, gated) == (expected == "success", expected == "failure", expected == "success")


def _gke_entry(payload: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "insertId": "a1",
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"id": "op-1", "first": True, "last": True, "producer": "k8s.io"},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "k8s.io",
            "methodName": "io.k8s.core.v1.pods.create",
            "resourceName": "core/v1/namespaces/shop/pods/web",
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            **payload,
        },
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "c", "location": "europe-west1"}},
        "timestamp": "2026-11-28T10:00:00Z",
    }
    if labels:
        entry["labels"] = labels
    return entry


def _decoded(value: dict[str, Any]) -> AuditEvent:
    (event,) = decode_record(RawRecord(orjson.dumps(value), Source("test")))
    assert isinstance(event, AuditEvent), event
    return event


@pytest.mark.parametrize(
    ("payload", "labels", "expected"),
    [
        ({"status": {}}, None, "success"),
        ({"status": {"code": 7}, "authorizationInfo": [{"granted": False}]}, None, "failure"),
        # A refusal GKE records only in the authorizer's verdict, without status or decision label.
        ({"authorizationInfo": [{"granted": False}]}, None, "failure"),
        # Admission refused it (Binary Authorization): no status, the authorizer allowed, the response says.
        (
            {
                "status": {},
                "authorizationInfo": [{"granted": True}],
                "response": {"@type": "core.k8s.io/v1.Status", "status": "Failure", "code": 403},
            },
            {"authorization.k8s.io/decision": "allow"},
            "failure",
        ),
        ({"status": {"code": 6, "message": 'pods "web" already exists'}}, None, "failure"),
    ],
)
def test_a_gke_entry_is_one_outcome_in_both_its_views(payload, labels, expected) -> None:
    event = _decoded(_gke_entry(payload, labels))
    k8s_view, gcp_view = (doc for _, doc in event.views)
    assert outcome_of(event) == expected  # the Kubernetes view the decoder wrote
    assert profile_of(GCP_AUDIT).outcome(gcp_view) == expected
    assert _verdicts(K8S, KUBERNETES_AUDIT, k8s_view)[:2] == (expected == "success", expected == "failure")


def test_an_unknown_outcome_word_is_refused_with_the_rule() -> None:
    with pytest.raises(RuleLoadError, match=r"event\.outcome takes success or failure"):
        RuleSet.from_yaml([_rule(9, K8S, {"sel": {"event.outcome": "denied"}, "condition": "sel"})])


def test_the_gate_leaves_one_of_them_and_all_of_them_alone() -> None:
    """The added detection is underscored, as Sigma's `them` leaves such names out."""
    rules = RuleSet.from_yaml(
        [_rule(5, K8S, {"a": {"verb": "delete"}, "b": {"verb": "create"}, "condition": "1 of them"})]
    )
    assert not rules.match_document(KUBERNETES_AUDIT, {"verb": "get"})
    assert rules.match_document(KUBERNETES_AUDIT, {"verb": "create"})
    assert not rules.match_document(KUBERNETES_AUDIT, {"verb": "create", "responseStatus": {"code": 403}})


def _gated_ir(logsource: dict[str, str]) -> Any:
    """A rule about something done, through the gate sigma-cli's pipeline adds (raw paths: no index
    prefixes), as the engine's IR."""
    from sigma.collection import SigmaCollection
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline

    from kubesigma.detections.engine.ir import rule_ir
    from kubesigma.detections.mapping import evaluation_pipeline
    from kubesigma.detections.normalized import OutcomeGateTransformation

    (rule,) = SigmaCollection.from_yaml(
        _rule(
            6,
            logsource,
            {"sel": {"kind|exists": True}, "other": {"kind|exists": False}, "condition": "sel or other"},
        )
    ).rules
    gate = ProcessingPipeline(items=[ProcessingItem(OutcomeGateTransformation(), identifier="gate")])
    (gate + evaluation_pipeline()).apply(rule)
    return rule_ir(rule)


@pytest.mark.parametrize(
    ("code", "decision", "stage", "uri"), list(itertools.product(CODES, DECISIONS, STAGES, URIS))
)
def test_the_gate_sigma_cli_writes_says_what_the_engine_checks(code, decision, stage, uri) -> None:
    """Converted queries (`sigma convert -p kubesigma`) carry the outcome in each rule; the engine checks
    it once per event (the profile's `succeeded`): both must say the same."""
    from kubesigma.detections.engine.interpret import evaluate

    doc: dict[str, Any] = {"kind": "Event", "verb": "create", "requestURI": uri}
    if code is not None:
        doc["responseStatus"] = {"code": code}
    if decision is not None:
        doc["annotations"] = {"authorization.k8s.io/decision": decision}
    if stage is not None:
        doc["stage"] = stage
    assert evaluate(_gated_ir(K8S), doc) == profile_of(KUBERNETES_AUDIT).succeeded(doc)


def test_a_rule_that_selects_refusals_in_raw_fields_is_not_gated() -> None:
    """Rules written for raw audit records (SigmaHQ's, a site's) select refusals by status code or
    decision: they are about failures already, so the success gate must not silence them."""
    rules = RuleSet.from_yaml(
        [
            _rule(11, K8S, {"sel": {"responseStatus.code": [401, 403]}, "condition": "sel"}),
            _rule(
                12, K8S, {"sel": {"annotations.authorization.k8s.io/decision": "forbid"}, "condition": "sel"}
            ),
            _rule(13, GCP, {"sel": {"protoPayload.authorizationInfo.granted": False}, "condition": "sel"}),
        ]
    )
    refused = {"kind": "Event", "verb": "list", "responseStatus": {"code": 403}}
    forbidden = {"kind": "Event", "verb": "get", "annotations": {"authorization.k8s.io/decision": "forbid"}}
    denied = {"protoPayload": {"authorizationInfo": [{"granted": False}], "status": {"code": 7}}}
    assert [r.id[-2:] for r in rules.match_document(KUBERNETES_AUDIT, refused)] == ["11"]
    assert [r.id[-2:] for r in rules.match_document(KUBERNETES_AUDIT, forbidden)] == ["12"]
    assert [r.id[-2:] for r in rules.match_document(GCP_AUDIT, denied)] == ["13"]
    assert not rules.match_document(KUBERNETES_AUDIT, {"kind": "Event", "responseStatus": {"code": 200}})
    assert not any(info.success_only for info in rules.rules)


def test_a_rule_that_asks_for_a_success_code_keeps_the_gate() -> None:
    """`responseStatus.code: 201` asks for a success: the rule stays one about something done, so a
    refused request does not fire it even where the code is only in a negated part."""
    rules = RuleSet.from_yaml(
        [
            _rule(
                14,
                K8S,
                {
                    "sel": {"verb": ["create", "patch"]},
                    "reapply": {"verb": "patch"},
                    "created": {"responseStatus.code": 201},
                    "condition": "sel and not (reapply and not created)",
                },
            )
        ]
    )
    assert [info.success_only for info in rules.rules] == [True]
    assert rules.match_document(KUBERNETES_AUDIT, {"verb": "create", "responseStatus": {"code": 201}})
    assert not rules.match_document(KUBERNETES_AUDIT, {"verb": "create", "responseStatus": {"code": 403}})
