"""Elasticsearch index templates for kubesigma: ECS mappings generated from the Alert model, plus the
raw records (Kubernetes audit Event, GCP LogEntry, CloudTrail record) laid out as Elastic's integrations do.

The Alert pydantic model is the one source of truth: every field it declares is mapped here by walking
the model, so a field added there is indexed without editing this file. Its `dict[str, Any]` members
(the embedded records) are mapped explicitly, because they carry arbitrary user objects: request and
response bodies are `dynamic: false` objects (kept in `_source`, only a curated set of fields indexed,
so a ConfigMap with 10,000 keys cannot explode the mapping), annotations and labels, whose keys contain
dots (`authorization.k8s.io/decision`), are `flattened`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
import typing
from datetime import UTC, date, datetime
from typing import Any, Union

from pydantic import BaseModel

from kubesigma.connectors.model.alert import Alert
from kubesigma.connectors.model.logsources import CLOUDTRAIL, GCP, KUBERNETES

# Dotted alert paths whose type is not what their Python type suggests (ECS types).
ALERT_FIELD_TYPES: dict[str, dict[str, Any]] = {
    "@timestamp": {"type": "date"},
    "event.created": {"type": "date"},
    "source.ip": {"type": "ip", "ignore_malformed": True},
    "rule.description": {"type": "text"},
    "kubesigma.suppression.first_seen": {"type": "date"},
    "kubesigma.suppression.last_seen": {"type": "date"},
    "user_agent.original": {
        "type": "keyword",
        "ignore_above": 1024,
        "fields": {"text": {"type": "text"}},
    },
}

KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}
LONG: dict[str, Any] = {"type": "long"}
FLATTENED: dict[str, Any] = {"type": "flattened", "ignore_above": 1024}
RAW_DATE: dict[str, Any] = {"type": "date", "ignore_malformed": True}
# An object kept in _source whose unknown members are never added to the mapping.
CLOSED: dict[str, Any] = {"type": "object", "dynamic": False}


def _closed(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "dynamic": False, "properties": properties}


def _obj(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"properties": properties}


def _user_info() -> dict[str, Any]:
    return _obj(username=KEYWORD, uid=KEYWORD, groups=KEYWORD, extra=FLATTENED)


def _pod_spec() -> dict[str, Any]:
    """The fields of a pod spec that detections and analysts read (privileged, host namespaces and
    paths, images, added capabilities). Keywords, so a surprising value type never rejects an alert."""
    container = _closed(
        name=KEYWORD,
        image=KEYWORD,
        command=KEYWORD,
        args=KEYWORD,
        securityContext=_closed(
            privileged=KEYWORD,
            allowPrivilegeEscalation=KEYWORD,
            runAsUser=KEYWORD,
            capabilities=_closed(add=KEYWORD),
        ),
        volumeMounts=_closed(mountPath=KEYWORD, name=KEYWORD),
    )
    return _closed(
        hostNetwork=KEYWORD,
        hostPID=KEYWORD,
        hostIPC=KEYWORD,
        serviceAccountName=KEYWORD,
        nodeName=KEYWORD,
        containers=container,
        initContainers=container,
        ephemeralContainers=container,
        volumes=_closed(name=KEYWORD, hostPath=_closed(path=KEYWORD, type=KEYWORD)),
    )


def _api_object() -> dict[str, Any]:
    """requestObject / responseObject: any Kubernetes object, indexed only where detections look."""
    pod_spec = _pod_spec()
    return _closed(
        kind=KEYWORD,
        apiVersion=KEYWORD,
        metadata=_closed(name=KEYWORD, namespace=KEYWORD, labels=FLATTENED, annotations=FLATTENED),
        spec=_closed(
            **pod_spec["properties"],
            template=_closed(spec=pod_spec),
            jobTemplate=_closed(spec=_closed(template=_closed(spec=pod_spec))),
            # exec/attach options and RBAC bindings
            type=KEYWORD,
        ),
        command=KEYWORD,
        container=KEYWORD,
        roleRef=_closed(kind=KEYWORD, name=KEYWORD, apiGroup=KEYWORD),
        subjects=_closed(kind=KEYWORD, name=KEYWORD, namespace=KEYWORD),
        rules=_closed(verbs=KEYWORD, resources=KEYWORD, apiGroups=KEYWORD),
    )


def kubernetes_audit_mapping() -> dict[str, Any]:
    """`kubernetes.audit.*`: the raw audit Event, as Elastic's Kubernetes integration (audit_logs) lays
    it out, with request/response objects closed and dotted annotation keys flattened."""
    return _obj(
        apiVersion=KEYWORD,
        kind=KEYWORD,
        level=KEYWORD,
        auditID=KEYWORD,
        stage=KEYWORD,
        requestURI=KEYWORD,
        verb=KEYWORD,
        user=_user_info(),
        impersonatedUser=_user_info(),
        sourceIPs=KEYWORD,
        userAgent=KEYWORD,
        objectRef=_obj(
            resource=KEYWORD,
            namespace=KEYWORD,
            name=KEYWORD,
            uid=KEYWORD,
            apiGroup=KEYWORD,
            apiVersion=KEYWORD,
            resourceVersion=KEYWORD,
            subresource=KEYWORD,
        ),
        responseStatus=_closed(code=LONG, status=KEYWORD, reason=KEYWORD, message={"type": "text"}),
        requestObject=_api_object(),
        responseObject=_api_object(),
        requestReceivedTimestamp=RAW_DATE,
        stageTimestamp=RAW_DATE,
        annotations=FLATTENED,
    )


def gcp_audit_mapping() -> dict[str, Any]:
    """`gcp.audit.*`: the Cloud Audit LogEntry as delivered (camelCase), request/response closed."""
    return _obj(
        insertId=KEYWORD,
        logName=KEYWORD,
        timestamp=RAW_DATE,
        receiveTimestamp=RAW_DATE,
        severity=KEYWORD,
        resource=_obj(type=KEYWORD, labels=FLATTENED),
        labels=FLATTENED,
        operation=_closed(id=KEYWORD, producer=KEYWORD),
        protoPayload=_closed(
            methodName=KEYWORD,
            serviceName=KEYWORD,
            resourceName=KEYWORD,
            authenticationInfo=_closed(principalEmail=KEYWORD, principalSubject=KEYWORD),
            authorizationInfo=_closed(permission=KEYWORD, granted=KEYWORD, resource=KEYWORD),
            requestMetadata=_closed(callerIp=KEYWORD, callerSuppliedUserAgent=KEYWORD),
            status=_closed(code=LONG, message={"type": "text"}),
            request=CLOSED,
            response=CLOSED,
        ),
    )


def aws_cloudtrail_mapping() -> dict[str, Any]:
    """`aws.cloudtrail.*`: the CloudTrail record as delivered; parameters and elements closed."""
    return _obj(
        eventVersion=KEYWORD,
        eventTime=RAW_DATE,
        eventSource=KEYWORD,
        eventName=KEYWORD,
        eventID=KEYWORD,
        eventType=KEYWORD,
        awsRegion=KEYWORD,
        sourceIPAddress=KEYWORD,  # a service name ("eks.amazonaws.com") as often as an address
        userAgent=KEYWORD,
        errorCode=KEYWORD,
        errorMessage={"type": "text"},
        readOnly=KEYWORD,
        recipientAccountId=KEYWORD,
        userIdentity=_closed(
            type=KEYWORD, arn=KEYWORD, accountId=KEYWORD, principalId=KEYWORD, userName=KEYWORD
        ),
        requestParameters=CLOSED,
        responseElements=CLOSED,
    )


# How each logsource's record is mapped, by where it sits in documents (its profile's `home`).
RECORD_MAPPINGS: dict[str, typing.Callable[[], dict[str, Any]]] = {
    KUBERNETES.home: kubernetes_audit_mapping,
    GCP.home: gcp_audit_mapping,
    CLOUDTRAIL.home: aws_cloudtrail_mapping,
}


def _records_under(namespace: str) -> dict[str, Any]:
    """The mapping of the top-level member `namespace` (`kubernetes`): the records whose home is in it."""
    return _obj(
        **{
            home.partition(".")[2]: mapping()
            for home, mapping in RECORD_MAPPINGS.items()
            if home.partition(".")[0] == namespace
        }
    )


RECORD_NAMESPACES = tuple(dict.fromkeys(home.partition(".")[0] for home in RECORD_MAPPINGS))

# The Alert model's free-form members, mapped by hand (everything else is derived from the model).
RAW_MEMBERS: dict[str, typing.Callable[[], dict[str, Any]]] = {
    **{namespace: functools.partial(_records_under, namespace) for namespace in RECORD_NAMESPACES},
    "kubesigma.source": lambda: _obj(uri=KEYWORD, line=LONG, offset=LONG, message_id=KEYWORD),
    "kubesigma.correlation": lambda: FLATTENED,
    "orchestrator.resource": lambda: _obj(name=KEYWORD, type=KEYWORD),
    "threat.tactic": lambda: _obj(id=KEYWORD, name=KEYWORD, reference=KEYWORD),
}


class MappingError(TypeError):
    """The Alert model has a field this generator cannot map (add it to RAW_MEMBERS or a type)."""


def _unwrap(annotation: Any) -> Any:
    """`X | None` → X; `list[X]` → X (Elasticsearch fields are multi-valued)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise MappingError(f"union {annotation!r} has no single Elasticsearch type")
            annotation = args[0]
        elif origin in (list, tuple, set, frozenset):
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _model_properties(model: type[BaseModel], prefix: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}{key}"
        properties[key] = _field_mapping(info.annotation, path)
    return properties


def _field_mapping(annotation: Any, path: str) -> dict[str, Any]:
    if path in RAW_MEMBERS:
        return RAW_MEMBERS[path]()
    if path in ALERT_FIELD_TYPES:
        return dict(ALERT_FIELD_TYPES[path])
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return {"properties": _model_properties(inner, f"{path}.")}
    if inner is bool:
        return {"type": "boolean"}
    if inner is int:
        return dict(LONG)
    if inner is float:
        return {"type": "double"}
    if inner is str:
        return dict(KEYWORD)
    raise MappingError(f"alert field {path}: no Elasticsearch mapping for {annotation!r}")


def alert_mappings() -> dict[str, Any]:
    """The `mappings` of the alerts index template, derived from `Alert`."""
    return {
        # Unknown top-level fields stay in _source without growing the mapping.
        "dynamic": False,
        "date_detection": False,
        "properties": _model_properties(Alert, ""),
    }


def event_mappings() -> dict[str, Any]:
    """The `mappings` of the events index (every normalized event, for hunting): the alert's shared
    ECS context fields plus the raw records, no rule fields."""
    alert = alert_mappings()["properties"]
    shared = ("@timestamp", "event", "user", "source", "user_agent", "orchestrator", "cloud")
    properties = {key: alert[key] for key in shared}
    properties.update({namespace: RAW_MEMBERS[namespace]() for namespace in RECORD_NAMESPACES})
    properties.update(
        kubesigma=_obj(
            event_id=KEYWORD,
            logsource=KEYWORD,
            source=RAW_MEMBERS["kubesigma.source"](),
            event_truncated={"type": "boolean"},
            truncated_fields=KEYWORD,
        ),
    )
    return {"dynamic": False, "date_detection": False, "properties": properties}


def field_paths(mappings: dict[str, Any]) -> set[str]:
    """Every searchable dotted field path in `mappings` (objects themselves excluded)."""
    out: set[str] = set()

    def walk(props: dict[str, Any], prefix: str) -> None:
        for key, spec in props.items():
            path = f"{prefix}{key}"
            if "properties" in spec:
                walk(spec["properties"], f"{path}.")
            elif spec.get("type", "object") != "object":
                out.add(path)
                for sub in spec.get("fields", {}):
                    out.add(f"{path}.{sub}")

    walk(mappings["properties"], "")
    return out


def mapping_version(mappings: dict[str, Any]) -> str:
    """A short digest of a mapping, stored in the template's _meta so operators see which is live."""
    return hashlib.sha256(json.dumps(mappings, sort_keys=True).encode()).hexdigest()[:12]


KINDS = ("alerts", "events")


def index_pattern(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}-*"


def index_name(prefix: str, kind: str, timestamp: str) -> str:
    """The index a document belongs to: a pure function of its `@timestamp` (UTC day), so a retry or a
    replay always targets the same index as the first write (a rollover alias would not)."""
    day = _day_of(timestamp)
    return f"{prefix}-{kind}-{day:%Y.%m.%d}"


def _day_of(timestamp: str) -> date:
    if not isinstance(timestamp, str):
        raise ValueError(f"@timestamp {timestamp!r} is not an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(f"@timestamp {timestamp!r} is not an RFC 3339 time") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).date()


def day_of_index(name: str, prefix: str, kind: str) -> date | None:
    """The day in a date-named index (`<prefix>-<kind>-YYYY.MM.DD`), or None for any other index."""
    head = f"{prefix}-{kind}-"
    if not name.startswith(head):
        return None
    try:
        return datetime.strptime(name[len(head) :], "%Y.%m.%d").date()
    except ValueError:
        return None


def index_template(prefix: str, kind: str, *, lifecycle_policy: str | None = None) -> dict[str, Any]:
    """The composable index template body for one kind of index."""
    mappings = alert_mappings() if kind == "alerts" else event_mappings()
    settings: dict[str, Any] = {
        "index.number_of_shards": 1,
        # one replica where there is a second node to hold it; green on a single test node
        "index.auto_expand_replicas": "0-1",
        "index.mapping.total_fields.limit": 2000,
        "index.refresh_interval": "5s",
    }
    if lifecycle_policy:
        settings["index.lifecycle.name"] = lifecycle_policy
        # the policy's delete phase counts from the day in the index name, not from its creation
        settings["index.lifecycle.parse_origination_date"] = True
    return {
        "index_patterns": [index_pattern(prefix, kind)],
        "priority": 200,
        "template": {"settings": settings, "mappings": mappings},
        "_meta": {
            "managed_by": "kubesigma",
            "kind": kind,
            "mapping_version": mapping_version(mappings),
        },
    }
