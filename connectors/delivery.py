"""How the clouds deliver audit records: native audit Events wrapped as GKE LogEntries, CloudWatch Logs
subscription envelopes, Kinesis data and Firehose files; CloudTrail calls as records, S3 files and
EventBridge events. `kubesigma rules test` replays each case in every form its rule can see through them,
and tests build real-format data with them. The decoders never import this (connectors/formats/ is
walked by the format registry; this module is outside it)."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from kubesigma.connectors.formats._time import parse_rfc3339
from kubesigma.connectors.model.logsources import is_long_running

# HTTP status of the API server → google.rpc.Code GKE writes in protoPayload.status.
HTTP_TO_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 422: 3, 429: 8, 500: 13, 501: 12, 503: 14, 504: 4}
READ_VERBS = frozenset({"get", "list", "watch"})


def _event_time(event: dict[str, Any]) -> str:
    for name in ("requestReceivedTimestamp", "stageTimestamp", "timestamp"):
        if isinstance(event.get(name), str):
            return event[name]
    raise ValueError(f"audit Event {event.get('auditID')} has no timestamp to deliver it at")


def _gke_method_group(api_group: str) -> str:
    # GKE names methods io.k8s.<group>: core for the legacy group, `.k8s.io` groups reversed
    # (rbac.authorization.k8s.io → authorization.rbac), other domains as reversed domains.
    if not api_group:
        return "io.k8s.core"
    if api_group.endswith(".k8s.io"):
        return "io.k8s." + ".".join(reversed(api_group[: -len(".k8s.io")].split(".")))
    if "." not in api_group:
        return f"io.k8s.{api_group}"
    return ".".join(reversed(api_group.split(".")))


def _gke_names(event: dict[str, Any]) -> tuple[str, str]:
    """(methodName, resourceName) GKE writes for an audit Event's request."""
    verb = event.get("verb", "")
    ref = event.get("objectRef")
    if not isinstance(ref, dict) or not ref.get("resource"):
        path = str(event.get("requestURI", "")).split("?", 1)[0].lstrip("/")
        return f"io.k8s.{verb}", path
    group = ref.get("apiGroup") or ""
    version = ref.get("apiVersion") or "v1"
    method = [_gke_method_group(group), version, ref["resource"]]
    if ref.get("subresource"):
        method.append(ref["subresource"])
    method.append(verb)
    parts = [group or "core", version]
    namespace = ref.get("namespace")
    if namespace and ref["resource"] != "namespaces":
        parts += ["namespaces", namespace]
    parts.append(ref["resource"])
    if ref.get("name"):
        parts.append(ref["name"])
        if ref.get("subresource"):
            parts.append(ref["subresource"])
    return ".".join(method), "/".join(parts)


def _with_type(obj: Any) -> Any:
    if isinstance(obj, dict) and "kind" in obj and "@type" not in obj:
        api_version = obj.get("apiVersion", "v1")
        group_version = api_version if "/" in api_version else f"core/{api_version}"
        return {"@type": f"{group_version}.{obj['kind']}", **obj}
    return obj


def as_gke_logentry(
    event: dict[str, Any],
    project: str = "example-project",
    cluster: str = "example-cluster",
    location: str = "us-central1",
    *,
    as_written: bool = False,
) -> dict[str, Any]:
    """The Cloud Logging LogEntry GKE writes for a Kubernetes audit Event (AuditLog protoPayload).

    By default one entry stands for the whole request. `as_written` writes what GKE writes for this
    stage of the request (see `_as_written`): a long-running request's two stages become two entries
    sharing `operation.id`, the exec command becomes the `command.gke.io/command` label, and so on.
    """
    method, resource_name = _gke_names(event)
    user: dict[str, Any] = event["user"] if isinstance(event.get("user"), dict) else {}
    ips = event.get("sourceIPs") or []
    metadata: dict[str, Any] = {}
    if ips:
        metadata["callerIp"] = ips[0]
    if event.get("userAgent"):
        metadata["callerSuppliedUserAgent"] = event["userAgent"]
    http = (event.get("responseStatus") or {}).get("code", 200)
    status: dict[str, Any] = {}
    if isinstance(http, int) and http >= 400:
        status = {"code": HTTP_TO_GRPC.get(http, 2)}
        message = (event.get("responseStatus") or {}).get("message")
        if message:
            status["message"] = message
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": user.get("username", "")},
        "authorizationInfo": [
            {"granted": http < 400 if isinstance(http, int) else True, "permission": method}
        ],
        "methodName": method,
        "requestMetadata": metadata,
        "resourceName": resource_name,
        "serviceName": "k8s.io",
        "status": status,
    }
    if "requestObject" in event:
        payload["request"] = _with_type(event["requestObject"])
    if "responseObject" in event:
        payload["response"] = _with_type(event["responseObject"])
    timestamp = _event_time(event)
    log = "data_access" if event.get("verb") in READ_VERBS else "activity"
    audit_id = event["auditID"]
    entry: dict[str, Any] = {
        # Cloud Logging makes insertIds unique per entry: derived from the whole Event, so edited copies
        # of one request (same auditID) stay distinct entries.
        "insertId": hashlib.sha1(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24],
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2F{log}",
        "operation": {"first": True, "id": audit_id, "last": True, "producer": "k8s.io"},
        "protoPayload": payload,
        "receiveTimestamp": event.get("stageTimestamp", timestamp),
        "resource": {
            "labels": {"cluster_name": cluster, "location": location, "project_id": project},
            "type": "k8s_cluster",
        },
        "timestamp": timestamp,
    }
    if isinstance(event.get("annotations"), dict) and event["annotations"]:
        entry["labels"] = dict(event["annotations"])
    if as_written:
        _as_written(entry, event, resource_name)
    return entry


def _as_written(entry: dict[str, Any], event: dict[str, Any], resource_name: str) -> None:
    """What GKE writes beyond the one-entry form (real entries: elastic/integrations' GKE samples): the
    audit ID as `insertId`, or for a long-running request two entries sharing `operation.id`, the
    ResponseStarted one `first` and the ResponseComplete one `last`, each with an insertId of its own; the
    stage's time, and a `receiveTimestamp` (nanoseconds) one to thirty seconds later; the resource each
    permission was checked on (the path of a non-resource request); the impersonated user as
    `authoritySelector`; no principal or authorization for a failed authentication; the exec/attach
    command as the label `command.gke.io/command` (arguments joined by spaces); `k8s.io/Patch` as a patch
    body's type."""
    payload = entry["protoPayload"]
    ref: dict[str, Any] = event["objectRef"] if isinstance(event.get("objectRef"), dict) else {}
    verb = event.get("verb")
    long_running = is_long_running(verb, ref.get("subresource"))  # GKE: an entry at response start and end
    if long_running:
        entry["operation"] = {"id": event["auditID"], "producer": "k8s.io"}
        if event.get("stage") == "ResponseStarted":
            entry["operation"]["first"] = True
        else:
            entry["operation"]["last"] = True
            entry["timestamp"] = event.get("stageTimestamp", entry["timestamp"])
        digest = entry["insertId"]
        entry["insertId"] = (
            f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:24]}{digest[:8]}"
        )
    else:
        entry["insertId"] = event["auditID"]
    when = parse_rfc3339(event.get("stageTimestamp") or entry["timestamp"])
    if when is not None:
        # Cloud Logging receives an entry one to thirty seconds after it was written.
        delay = 1.0 + int(hashlib.sha1(entry["insertId"].encode()).hexdigest()[:6], 16) / 0xFFFFFF * 29.0
        received = when + delay
        nanos = round((received - int(received)) * 1e9) % 1_000_000_000
        stamp = datetime.fromtimestamp(int(received), UTC).strftime("%Y-%m-%dT%H:%M:%S")
        entry["receiveTimestamp"] = f"{stamp}.{nanos:09d}Z"
    for grant in payload.get("authorizationInfo", []):
        grant["resource"] = resource_name
    user: dict[str, Any] = event["user"] if isinstance(event.get("user"), dict) else {}
    if not user.get("username"):
        payload["authenticationInfo"] = {}
        payload.pop("authorizationInfo", None)
    impersonated = event.get("impersonatedUser")
    if isinstance(impersonated, dict) and impersonated.get("username"):
        payload["authenticationInfo"]["authoritySelector"] = impersonated["username"]
    if ref.get("subresource") in ("exec", "attach", "portforward") and "data_access" in entry["logName"]:
        # GKE's documentation lists exec, attach and port-forward as Admin Activity, WebSocket (get) ones too.
        entry["logName"] = entry["logName"].replace("data_access", "activity")
    if ref.get("subresource") in ("exec", "attach"):
        query = parse_qs(urlsplit(str(event.get("requestURI", ""))).query)
        if query.get("command"):
            entry.setdefault("labels", {})["command.gke.io/command"] = " ".join(query["command"])
    if verb == "patch" and isinstance(payload.get("request"), dict):
        payload["request"] = {
            "@type": "k8s.io/Patch",
            **{k: v for k, v in payload["request"].items() if k != "@type"},
        }


def _millis(event: dict[str, Any]) -> int:
    when = parse_rfc3339(_event_time(event))
    if when is None:
        raise ValueError(f"audit Event {event.get('auditID')} has an unreadable timestamp")
    return round(when * 1000)


def _log_event_id(millis: int, index: int) -> str:
    # CloudWatch event ids are 56-digit strings that begin with the timestamp's digits.
    return f"{millis:020d}{index:036d}"


def as_cloudwatch_envelope(
    events: Sequence[dict[str, Any] | str],
    cluster: str = "example-cluster",
    account: str = "123456789012",
    stream: str = "kube-apiserver-audit-0123456789abcdef0123456789abcdef",
) -> dict[str, Any]:
    """The CloudWatch Logs subscription payload (decompressed) carrying these audit Events from an EKS
    cluster's log group; a str is taken as an already-serialized (e.g. cut) message."""
    log_events = []
    for index, event in enumerate(events):
        if isinstance(event, str):
            message, millis = event, 0
        else:
            message, millis = orjson.dumps(event).decode(), _millis(event)
        log_events.append({"id": _log_event_id(millis, index), "timestamp": millis, "message": message})
    return {
        "messageType": "DATA_MESSAGE",
        "owner": account,
        "logGroup": f"/aws/eks/{cluster}/cluster",
        "logStream": stream,
        "subscriptionFilters": ["kubesigma-audit"],
        "logEvents": log_events,
    }


def as_control_message(account: str = "123456789012") -> dict[str, Any]:
    """The CONTROL_MESSAGE CloudWatch sends when a subscription is created."""
    return {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {
                "id": "",
                "timestamp": 0,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.",
            }
        ],
    }


def as_kinesis_data(envelope: dict[str, Any]) -> bytes:
    """A subscription payload as a Kinesis record's data: gzip-compressed JSON."""
    return gzip.compress(orjson.dumps(envelope))


def write_cloudwatch_gzip(
    path: str | Path,
    events: Iterable[dict[str, Any]],
    per_envelope: int = 10,
    cluster: str = "example-cluster",
    account: str = "123456789012",
) -> Path:
    """A Firehose-style delivery file: gzip, one subscription envelope per line."""
    path = Path(path)
    batch: list[dict[str, Any]] = []
    with gzip.open(path, "wb") as out:
        for event in events:
            batch.append(event)
            if len(batch) == per_envelope:
                out.write(orjson.dumps(as_cloudwatch_envelope(batch, cluster, account)) + b"\n")
                batch = []
        if batch:
            out.write(orjson.dumps(as_cloudwatch_envelope(batch, cluster, account)) + b"\n")
    return path


def as_cloudtrail_record(
    event_name: str,
    *,
    event_source: str = "eks.amazonaws.com",
    cluster: str | None = "example-cluster",
    account: str = "123456789012",
    region: str = "us-east-1",
    user_arn: str = "arn:aws:iam::123456789012:user/alice",
    source_ip: str = "198.51.100.7",
    user_agent: str = "aws-cli/2.15.0",
    event_time: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A CloudTrail record of one API call (by default an EKS call naming `cluster`)."""
    when = (event_time or datetime(2026, 1, 1, tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    request = {"name": cluster} if cluster else None
    ident = event_id or hashlib.sha1(f"{event_source}/{event_name}/{cluster}/{when}".encode()).hexdigest()
    return {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": user_arn,
            "accountId": account,
            "userName": user_arn.rsplit("/", 1)[-1],
        },
        "eventTime": when,
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": request,
        "responseElements": {
            "cluster": {"name": cluster, "arn": f"arn:aws:eks:{region}:{account}:cluster/{cluster}"}
        }
        if cluster and event_name in ("CreateCluster", "DeleteCluster")
        else None,
        "requestID": ident[:8] + "-0000-4000-8000-" + ident[8:20],
        "eventID": f"{ident[:8]}-{ident[8:12]}-{ident[12:16]}-{ident[16:20]}-{ident[20:32]}",
        "readOnly": event_name.startswith(("Describe", "List", "Get")),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def as_cloudtrail_file(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON document CloudTrail writes to S3."""
    return {"Records": list(records)}


def as_eventbridge_event(record: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event that carries a CloudTrail record."""
    return {
        "version": "0",
        "id": hashlib.sha1(record["eventID"].encode()).hexdigest()[:32],
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws." + record["eventSource"].split(".", 1)[0],
        "account": record.get("recipientAccountId"),
        "time": record["eventTime"],
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }
