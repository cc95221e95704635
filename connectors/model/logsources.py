"""What kubesigma knows about each logsource it reads, in one object per logsource.

A `LogSourceProfile` says where the record sits in the documents kubesigma writes (alerts and indexed
events, laid out as Elastic's integrations do), which of its members are bulky, what its ECS action and
outcome are, and the facts about its fields that the engine's speed rests on: the dispatch key, the
fields with few distinct values in real traffic, who is acting. Every role reads this one object; a new
logsource is one more profile here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubesigma.connectors.model.event import (
    AWS_CLOUDTRAIL,
    GCP_AUDIT,
    KUBERNETES_AUDIT,
    AuditEvent,
    LogSource,
)

# A field's known sub-fields: None means "any sub-path" (a free-form object such as requestObject),
# an empty set a leaf.
KnownFields = dict[str, set[str] | None]


@dataclass(frozen=True)
class LogSourceProfile:
    logsource: LogSource
    # Where the record sits in alert and event documents, e.g. `kubernetes.audit`.
    home: str
    # Members left out of outgoing copies of records over the soft size limit.
    bulky: tuple[str, ...]
    # ECS `event.action` and `event.outcome` of a record.
    action: Callable[[dict[str, Any]], str | None]
    outcome: Callable[[dict[str, Any]], str]
    # Whether the API server let the request happen: not refused or failed, decided, not a dry run.
    # Rules about something done fire only then (detections/normalized.py holds the Sigma form).
    succeeded: Callable[[dict[str, Any]], bool]
    # What a record acted on (a repeat of the same identity on the same object folds into one alert).
    object_of: Callable[[dict[str, Any]], str]
    # Fields a record carries at the top level, with their known sub-fields (`rules check` warnings).
    known_fields: KnownFields
    # Fields holding event time, which time-part modifiers (`|hour`, `|day`, ...) read.
    time_fields: frozenset[str] = frozenset()
    # Cheap, discriminating, scalar fields: the engine's dispatch key.
    dispatch: tuple[str, ...] = ()
    # Fields with few distinct values in real traffic: rules reading only these are memoized.
    low_cardinality: frozenset[str] = frozenset()
    # Fields that take a bounded set of values per identity (a node's groups and addresses do not
    # change): a dispatch bucket specializes on these too.
    bounded_per_identity: frozenset[str] = frozenset()
    # Who is acting: a bucket's first specialization level keys on all of these its rules read.
    identity: frozenset[str] = frozenset()
    # The order in which a bucket keys on its fields: identities first (they decide most rules).
    specialize_first: tuple[str, ...] = ()
    # Fields whose value is the same for most records: poor guards.
    unselective: frozenset[str] = field(default_factory=frozenset)

    @property
    def index_prefix(self) -> str:
        """The prefix of the record's fields in indexed documents (`kubernetes.audit.`)."""
        return self.home + "."

    @property
    def specialize_on(self) -> frozenset[str]:
        return self.low_cardinality | self.bounded_per_identity


# kube-apiserver's long-running requests (its --long-running-request-regexp, and watch): they hold the
# connection open, and are audited when the response starts and again when it completes.
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})


def is_long_running(verb: Any, subresource: Any) -> bool:
    """As read from a record: anything but a string (a list, an object) is no long-running verb or
    subresource, and fails no lookup."""
    return (isinstance(verb, str) and verb in LONG_RUNNING_VERBS) or (
        isinstance(subresource, str) and subresource in LONG_RUNNING_SUBRESOURCES
    )


def _get(doc: dict[str, Any], *path: str) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)  # type: ignore[assignment]
    return doc


# ECS `event.outcome` of a record. The Sigma side of the same answer, for rules, is in
# detections/normalized.py; a test holds the two together.
def _status_outcome(doc: dict[str, Any]) -> str:
    """Kubernetes: refused or failed (a status of 400 or more, or the authorizer's forbid), else
    succeeded when the API server answered (any other status), else unknown (written before it did)."""
    code = _get(doc, "responseStatus", "code")
    numeric = isinstance(code, int) and not isinstance(code, bool)
    if (numeric and code >= 400) or _get(doc, "annotations", "authorization.k8s.io/decision") == "forbid":
        return "failure"
    return "success" if numeric else "unknown"


def _kubernetes_succeeded(doc: dict[str, Any]) -> bool:
    if _status_outcome(doc) == "failure" or doc.get("stage") == "RequestReceived":
        return False
    uri = doc.get("requestURI")
    return not (isinstance(uri, str) and "dryrun=" in uri.lower())


def _gcp_outcome(doc: dict[str, Any]) -> str:
    """GCP: a non-zero google.rpc code, a refused permission or a failure Status as the response."""
    payload = doc.get("protoPayload")
    if not isinstance(payload, dict):
        return "unknown"
    status = payload.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    checks = payload.get("authorizationInfo")
    refused = isinstance(checks, list) and any(
        isinstance(c, dict) and c.get("granted") is False for c in checks
    )
    response = payload.get("response")
    if (
        (isinstance(code, int) and code >= 1)
        or refused
        or (isinstance(response, dict) and response.get("status") == "Failure")
    ):
        return "failure"
    return "success" if isinstance(status, dict) else "unknown"


def _kubernetes_object(doc: dict[str, Any]) -> str:
    ref = doc.get("objectRef")
    if isinstance(ref, dict):
        parts = (ref.get("resource"), ref.get("namespace"), ref.get("name"), ref.get("subresource"))
        return "/".join(p if isinstance(p, str) else "" for p in parts)
    uri = doc.get("requestURI")
    return uri.split("?", 1)[0] if isinstance(uri, str) else ""


def _text(value: Any) -> str | None:
    """A record's field as ECS text: records may hold anything where a string belongs."""
    return value if isinstance(value, str) else None


def _gcp_method(doc: dict[str, Any]) -> str | None:
    method = _get(doc, "protoPayload", "methodName")
    return method if isinstance(method, str) else None


def _gcp_object(doc: dict[str, Any]) -> str:
    name = _get(doc, "protoPayload", "resourceName")
    return name if isinstance(name, str) else ""


def _cloudtrail_object(doc: dict[str, Any]) -> str:
    # CloudTrail: the API call is the object acted on.
    name = doc.get("eventName")
    return f"{doc.get('eventSource', '')}/{name}" if isinstance(name, str) else ""


KUBERNETES = LogSourceProfile(
    logsource=KUBERNETES_AUDIT,
    home="kubernetes.audit",
    bulky=("requestObject", "responseObject"),
    action=lambda doc: _text(doc.get("verb")),
    outcome=_status_outcome,
    succeeded=_kubernetes_succeeded,
    object_of=_kubernetes_object,
    known_fields={
        "kind": set(),
        "apiVersion": set(),
        "level": set(),
        "auditID": set(),
        "stage": set(),
        "requestURI": set(),
        "verb": set(),
        "userAgent": set(),
        "sourceIPs": set(),
        "requestReceivedTimestamp": set(),
        "stageTimestamp": set(),
        "user": {"username", "uid", "groups", "extra"},
        "impersonatedUser": {"username", "uid", "groups", "extra"},
        "objectRef": {
            "resource",
            "namespace",
            "name",
            "uid",
            "apiGroup",
            "apiVersion",
            "resourceVersion",
            "subresource",
        },
        "responseStatus": {"code", "status", "reason", "message", "metadata", "details"},
        "requestObject": None,
        "responseObject": None,
        "annotations": None,
        "metadata": None,
    },
    time_fields=frozenset({"requestReceivedTimestamp", "stageTimestamp", "timestamp"}),
    dispatch=("verb", "objectRef.resource", "objectRef.subresource"),
    low_cardinality=frozenset(
        {
            "verb",
            "objectRef.resource",
            "objectRef.subresource",
            "objectRef.namespace",
            "objectRef.apiGroup",
            "objectRef.apiVersion",
            "user.username",
            "userAgent",
            "responseStatus.code",
            "stage",
            "level",
            "annotations.authorization.k8s.io/decision",
            "kind",
            "apiVersion",
        }
    ),
    bounded_per_identity=frozenset(
        {"user.groups", "impersonatedUser.username", "impersonatedUser.groups", "sourceIPs"}
    ),
    identity=frozenset(
        {
            "user.username",
            "user.groups",
            "impersonatedUser.username",
            "impersonatedUser.groups",
            "sourceIPs",
            "userAgent",
        }
    ),
    specialize_first=(
        "user.username",
        "userAgent",
        "user.groups",
        "impersonatedUser.username",
        "impersonatedUser.groups",
        "sourceIPs",
    ),
    unselective=frozenset(
        {
            "annotations.authorization.k8s.io/decision",
            "stage",
            "level",
            "kind",
            "apiVersion",
            "objectRef.apiVersion",
            "responseStatus.code",
        }
    ),
)

GCP = LogSourceProfile(
    logsource=GCP_AUDIT,
    home="gcp.audit",
    bulky=("protoPayload.request", "protoPayload.response"),
    action=_gcp_method,
    outcome=_gcp_outcome,
    succeeded=lambda doc: _gcp_outcome(doc) != "failure",
    object_of=_gcp_object,
    known_fields={
        "logName": set(),
        "timestamp": set(),
        "receiveTimestamp": set(),
        "severity": set(),
        "insertId": set(),
        "trace": set(),
        "spanId": set(),
        "traceSampled": set(),
        "textPayload": set(),
        "resource": None,
        "labels": None,
        "operation": None,
        "httpRequest": None,
        "sourceLocation": None,
        "jsonPayload": None,
        "protoPayload": {
            "@type",
            "status",
            "authenticationInfo",
            "authorizationInfo",
            "requestMetadata",
            "serviceName",
            "methodName",
            "resourceName",
            "resourceLocation",
            "numResponseItems",
            "request",
            "response",
            "metadata",
            "serviceData",
            "policyViolationInfo",
            "resourceOriginalState",
        },
    },
    time_fields=frozenset({"timestamp", "receiveTimestamp"}),
    dispatch=("protoPayload.methodName",),
    low_cardinality=frozenset(
        {
            "protoPayload.methodName",
            "protoPayload.serviceName",
            "protoPayload.status.code",
            "protoPayload.authenticationInfo.principalEmail",
            "resource.type",
            "logName",
        }
    ),
    specialize_first=("protoPayload.authenticationInfo.principalEmail",),
    unselective=frozenset({"protoPayload.serviceName", "resource.type", "logName"}),
)

CLOUDTRAIL = LogSourceProfile(
    logsource=AWS_CLOUDTRAIL,
    home="aws.cloudtrail",
    bulky=("requestParameters", "responseElements"),
    action=lambda doc: _text(doc.get("eventName")),
    outcome=lambda doc: "failure" if doc.get("errorCode") else "success",
    succeeded=lambda doc: not doc.get("errorCode"),
    object_of=_cloudtrail_object,
    known_fields=dict.fromkeys(
        (
            "eventVersion",
            "userIdentity",
            "eventTime",
            "eventSource",
            "eventName",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "errorCode",
            "errorMessage",
            "requestParameters",
            "responseElements",
            "additionalEventData",
            "requestID",
            "eventID",
            "readOnly",
            "resources",
            "eventType",
            "apiVersion",
            "managementEvent",
            "recipientAccountId",
            "serviceEventDetails",
            "sharedEventID",
            "vpcEndpointId",
            "eventCategory",
            "tlsDetails",
            "sessionCredentialFromConsole",
            "edgeDeviceDetails",
            "insightDetails",
        )
    ),
    time_fields=frozenset({"eventTime"}),
    dispatch=("eventSource", "eventName"),
    low_cardinality=frozenset(
        {
            "eventSource",
            "eventName",
            "awsRegion",
            "errorCode",
            "userIdentity.type",
            "userIdentity.arn",
            "userAgent",
            "apiVersion",
        }
    ),
    identity=frozenset({"userAgent"}),
    specialize_first=("userAgent", "userIdentity.arn", "userIdentity.type"),
    unselective=frozenset({"eventVersion", "eventType", "apiVersion"}),
)

PROFILES: dict[tuple[str, str], LogSourceProfile] = {
    (p.logsource.product, p.logsource.service): p for p in (KUBERNETES, GCP, CLOUDTRAIL)
}
# Of a logsource kubesigma has no profile for (rules may name any): no dispatch, no tuning, and its
# records (there are none today) would sit where Kubernetes records do.
GENERIC = LogSourceProfile(
    logsource=LogSource("", ""),
    home=KUBERNETES.home,
    bulky=KUBERNETES.bulky,
    action=KUBERNETES.action,
    outcome=KUBERNETES.outcome,
    succeeded=KUBERNETES.succeeded,
    object_of=KUBERNETES.object_of,
    known_fields={},
)


def outcome_of(event: AuditEvent) -> str:
    """ECS `event.outcome` of an event (its primary view): success, failure or unknown."""
    return profile_of(event.logsource).outcome(event.document)


def profile_of(logsource: LogSource) -> LogSourceProfile:
    """The profile of a logsource by product and service (case-insensitive); GENERIC when unknown."""
    return PROFILES.get((logsource.product.lower(), logsource.service.lower()), GENERIC)


def known_profile(product: str | None, service: str | None) -> LogSourceProfile | None:
    return PROFILES.get(((product or "").lower(), (service or "").lower()))
