"""Rule test cases: each rule's test events, completed into valid records, delivered in every format
the rule can see through the real decoders, and run against the rule (`kubesigma rules test`).

Test events live in `detections/tests/<rule file stem>.yml`, one file per rule:

    match:                      # each must raise the rule
      - name: kubectl exec with a shell
        event: {verb: create, objectRef: {resource: pods, subresource: exec, ...}, ...}
    no_match:                   # none may raise it
      - name: ...
        event: {...}
        formats: [native, eks]  # optional: where the case holds, with `why` when it leaves some out
        why: GKE LogEntries carry no query string

Cases spell out the fields that matter; the runner completes the envelope (kind, apiVersion, auditID,
stage, timestamps, a default user, source address and an allow decision for audit Events; account,
identity and ids for CloudTrail; the LogEntry frame for GCP), so every case is a valid record. A
Kubernetes audit case replaces default top-level fields whole (a case's `user` is the whole user);
CloudTrail and GCP cases merge into the defaults key by key.

Each case is then delivered in every format where its rule applies, through the real decoders:
Kubernetes audit rules as the native Event, a GKE LogEntry and an EKS CloudWatch subscription
record; CloudTrail rules as the record, a CloudTrail file and an EventBridge event; GCP rules as the
LogEntry.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubesigma.connectors import delivery
from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.model import AuditEvent, RuleInfo, Source
from kubesigma.detections.engine import RuleLoadError, RuleSet

DETECTIONS_DIR = Path(__file__).resolve().parent
RULES_DIR = DETECTIONS_DIR / "rules"
TESTS_DIR = DETECTIONS_DIR / "tests"  # one case file per rule, named by the rule file's stem

FORMATS: dict[str, tuple[str, ...]] = {
    "kubernetes/audit": ("native", "gke", "eks"),
    "aws/cloudtrail": ("native", "cloudtrail-file", "eventbridge"),
    "gcp/gcp.audit": ("native",),
}

_TIME = "2026-11-28T10:15:30.123456Z"


class CaseFileError(ValueError):
    """A test file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Case:
    """One test event of a rule's case file, as written there."""

    rule_stem: str
    expect: str  # "match" | "no_match"
    name: str
    event: dict[str, Any]  # as written in the test file
    formats: tuple[str, ...] | None  # None: every format of the rule's logsource
    path: Path


@dataclass
class Outcome:
    """What a run found: how much was exercised, and one line per failure naming rule and case."""

    rules: int = 0
    cases: int = 0
    deliveries: int = 0
    failures: list[str] = field(default_factory=list)


# ---- loading -------------------------------------------------------------------------------------


def case_file_for(rule_path: str | Path, tests_dir: Path | None = None) -> Path:
    """The rule's case file: in `tests_dir` when given, else where the shipped layout puts it, next to
    the `rules/` folder holding the rule (`<dir>/rules/<product>/<service>/x.yml` has its cases in
    `<dir>/tests/x.yml`), else in the shipped pack's tests."""
    stem = Path(rule_path).stem
    if tests_dir is None:
        for folder in Path(rule_path).resolve().parents:
            if folder.name == "rules" and (folder.parent / "tests").is_dir():
                return folder.parent / "tests" / f"{stem}.yml"
        tests_dir = TESTS_DIR
    return tests_dir / f"{stem}.yml"


def load_cases(path: Path) -> list[Case]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CaseFileError(f"{path}: cannot read test file: {e}") from e
    if not isinstance(data, dict):
        raise CaseFileError(f"{path}: a test file is a mapping with `match` and `no_match` lists")
    unknown = set(data) - {"match", "no_match"}
    if unknown:
        raise CaseFileError(f"{path}: unknown keys {sorted(unknown)} (known: match, no_match)")
    cases: list[Case] = []
    for expect in ("match", "no_match"):
        items = data.get(expect) or []
        if not isinstance(items, list) or not items:
            raise CaseFileError(f"{path}: `{expect}` must be a non-empty list of cases")
        for i, item in enumerate(items):
            where = f"{path}: {expect}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise CaseFileError(f"{where}: a case is a mapping with a `name` and an `event`")
            if not isinstance(item.get("event"), dict):
                raise CaseFileError(f"{where} ({item['name']}): `event` must be a mapping")
            formats = item.get("formats")
            if formats is not None:
                if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
                    raise CaseFileError(f"{where} ({item['name']}): `formats` must be a list of names")
                if not item.get("why"):
                    raise CaseFileError(f"{where} ({item['name']}): say `why` the case leaves formats out")
            cases.append(
                Case(
                    path.stem, expect, item["name"], item["event"], tuple(formats) if formats else None, path
                )
            )
    return cases


# ---- completing records -------------------------------------------------------------------------


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kubesigma-test/" + "/".join(parts)))


def _request_uri(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    group, version = ref.get("apiGroup") or "", ref.get("apiVersion") or "v1"
    parts = [f"/apis/{group}/{version}" if group else f"/api/{version}"]
    if ref.get("namespace") and ref.get("resource") != "namespaces":
        parts.append(f"namespaces/{ref['namespace']}")
    parts.append(ref.get("resource", ""))
    if ref.get("name"):
        parts.append(ref["name"])
    if ref.get("subresource"):
        parts.append(ref["subresource"])
    return "/".join(parts)


def complete_audit_event(event: dict[str, Any], key: str) -> dict[str, Any]:
    """A full audit.k8s.io/v1 Event from a case's fields (top-level fields of the case win whole)."""
    verb = event.get("verb", "get")
    code = 201 if verb == "create" else 200
    out: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse" if "requestObject" in event else "Metadata",
        "auditID": _stable_uuid(key),
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": "alice@example.com", "groups": ["platform-admins", "system:authenticated"]},
        "sourceIPs": ["192.168.50.14"],
        "userAgent": "kubectl/v1.29.2 (darwin/arm64) kubernetes/4b8e819",
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": _TIME,
        "stageTimestamp": _TIME,
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    out.update(copy.deepcopy(event))
    if "requestURI" not in out:
        out["requestURI"] = _request_uri(out)
    return out


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v)
            if isinstance(v, dict) and isinstance(out.get(k), dict)
            else copy.deepcopy(v)
        )
    return out


def complete_cloudtrail_record(event: dict[str, Any], key: str) -> dict[str, Any]:
    base = delivery.as_cloudtrail_record(
        str(event.get("eventName", "DescribeCluster")), event_id=_stable_uuid(key)
    )
    base["requestParameters"] = base.get("requestParameters") or {}
    return _deep_merge(base, event)


def complete_gcp_logentry(event: dict[str, Any], key: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "insertId": hashlib.sha1(key.encode()).hexdigest()[:16],
        "logName": "projects/example-project/logs/cloudaudit.googleapis.com%2Factivity",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "container.googleapis.com",
            "methodName": "google.container.v1.ClusterManager.GetCluster",
            "resourceName": "projects/example-project/locations/us-central1/clusters/example-cluster",
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            "requestMetadata": {
                "callerIp": "198.51.100.7",
                "callerSuppliedUserAgent": "google-cloud-sdk gcloud/470.0.0",
            },
            "status": {},
        },
        "resource": {
            "type": "gke_cluster",
            "labels": {
                "cluster_name": "example-cluster",
                "location": "us-central1",
                "project_id": "example-project",
            },
        },
        "severity": "NOTICE",
        "timestamp": _TIME,
        "receiveTimestamp": _TIME,
    }
    return _deep_merge(base, event)


COMPLETERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "kubernetes/audit": complete_audit_event,
    "aws/cloudtrail": complete_cloudtrail_record,
    "gcp/gcp.audit": complete_gcp_logentry,
}


def deliveries(logsource: str, record: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The record as each format of its logsource delivers it."""
    if logsource == "kubernetes/audit":
        yield "native", record
        yield "gke", delivery.as_gke_logentry(record, as_written=True)
        yield "eks", delivery.as_cloudwatch_envelope([record])
    elif logsource == "aws/cloudtrail":
        yield "native", record
        yield "cloudtrail-file", delivery.as_cloudtrail_file([record])
        yield "eventbridge", delivery.as_eventbridge_event(record)
    else:
        yield "native", record


def decode(value: Any, label: str) -> tuple[list[AuditEvent], list[str]]:
    """Events decoded from one delivered value, and why any part of it was refused."""
    events: list[AuditEvent] = []
    problems: list[str] = []
    for out in decode_value(value, Source(label)):
        if isinstance(out, AuditEvent):
            events.append(out)
        else:
            problems.append(f"{type(out).__name__}: {out.reason}")
    return events, problems


# ---- running -------------------------------------------------------------------------------------


def _logsource_key(info: RuleInfo) -> str:
    return f"{info.logsource.product}/{info.logsource.service}"


def matches(ruleset: RuleSet, info: RuleInfo, event: AuditEvent) -> list[RuleInfo]:
    """Rules raised by the event's views of the rule's logsource (a GKE entry is two views)."""
    out: list[RuleInfo] = []
    for logsource, doc in event.views:
        if (logsource.product, logsource.service) == (info.logsource.product, info.logsource.service):
            out.extend(ruleset.match_document(logsource, doc))
    return out


# How a refused request looks where the authorizer refused it, and where admission did (a 403 the
# authorizer had allowed: PodSecurity, policy webhooks; GKE keeps such a refusal in the response only).
REFUSALS: dict[str, dict[str, Any]] = {
    "refused by the authorizer": {
        "responseStatus": {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403},
        "annotations": {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""},
    },
    "refused by admission": {
        "responseStatus": {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403},
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    },
}


def refused(record: dict[str, Any], how: str) -> dict[str, Any]:
    """A completed audit Event as if the API server had refused the request (`how`: a REFUSALS key)."""
    out = copy.deepcopy(record)
    out.update(copy.deepcopy(REFUSALS[how]))
    out["auditID"] = _stable_uuid(out["auditID"], how)
    return out


def dry_run(record: dict[str, Any]) -> dict[str, Any]:
    """A completed audit Event as the same request made with `--dry-run=server` (`dryRun=All`)."""
    out = copy.deepcopy(record)
    uri = str(out.get("requestURI", ""))
    out["requestURI"] = uri + ("&" if "?" in uri else "?") + "dryRun=All"
    out["auditID"] = _stable_uuid(out["auditID"], "dry run")
    return out


def _refused_deliveries(record: dict[str, Any], how: str) -> Iterator[tuple[str, Any]]:
    for fmt, value in deliveries("kubernetes/audit", record):
        if fmt == "gke" and how == "refused by admission":
            # GKE: no status, the authorizer's grant, and the failure Status as the response.
            payload = value["protoPayload"]
            payload["status"] = {}
            for check in payload.get("authorizationInfo", []):
                check["granted"] = True
            payload["response"] = {"@type": "core.k8s.io/v1.Status", **REFUSALS[how]["responseStatus"]}
        yield fmt, value


def run_rule_cases(
    ruleset: RuleSet,
    info: RuleInfo,
    cases: Sequence[Case],
    outcome: Outcome,
    *,
    success_only: bool = False,
) -> None:
    """Deliver each case in every format and check the rule's verdict. With `success_only` (a rule
    about something done: detections/normalized.py), every `match` case is also delivered as refused,
    by the authorizer and by admission, and as a dry run, and must then raise nothing."""
    key = _logsource_key(info)
    complete = COMPLETERS.get(key)
    if complete is None:
        outcome.failures.append(f"{info.path}: no test formats known for logsource {key}")
        return
    all_formats = FORMATS[key]
    for case in cases:
        outcome.cases += 1
        unknown = set(case.formats or ()) - set(all_formats)
        if unknown:
            outcome.failures.append(
                f"{case.path}: '{case.name}': unknown formats {sorted(unknown)} for {key}"
            )
            continue
        record = complete(case.event, f"{case.rule_stem}/{case.expect}/{case.name}")
        variants: list[tuple[str, str, Iterator[tuple[str, Any]]]] = [
            (case.name, case.expect, deliveries(key, record))
        ]
        if success_only and case.expect == "match" and key == "kubernetes/audit":
            variants += [
                (f"{case.name}, {how}", "no_match", _refused_deliveries(refused(record, how), how))
                for how in REFUSALS
            ]
            # A dry run changes nothing; GKE keeps no query string, so only native and EKS can tell.
            variants.append(
                (
                    f"{case.name}, as a dry run",
                    "no_match",
                    ((f, v) for f, v in deliveries(key, dry_run(record)) if f != "gke"),
                )
            )
        for name, expect, delivered in variants:
            _check(ruleset, info, case, name, expect, delivered, outcome)


def _check(
    ruleset: RuleSet,
    info: RuleInfo,
    case: Case,
    name: str,
    expect: str,
    delivered: Iterator[tuple[str, Any]],
    outcome: Outcome,
) -> None:
    for fmt, value in delivered:
        if case.formats is not None and fmt not in case.formats:
            continue
        outcome.deliveries += 1
        events, problems = decode(value, f"{case.path.name}:{name}:{fmt}")
        label = f"rule {info.title!r} ({Path(info.path).name}) {expect} '{name}' [{fmt}]"
        if problems or not events:
            outcome.failures.append(f"{label}: not decoded: {'; '.join(problems) or 'no event'}")
            continue
        hit = any(info.id in {r.id for r in matches(ruleset, info, e)} for e in events)
        if expect == "match" and not hit:
            outcome.failures.append(f"MISS {label}: expected an alert, got none")
        elif expect == "no_match" and hit:
            outcome.failures.append(f"FALSE HIT {label}: expected no alert, got one")


def run_tests(paths: Sequence[str | Path], tests_dir: Path | None = None) -> Outcome:
    """Run every detection rule of `paths` against its cases (in `tests_dir`, else where
    `case_file_for` finds them); failures name rule and case."""
    outcome = Outcome()
    try:
        ruleset = RuleSet.load(list(paths))
    except RuleLoadError as e:
        outcome.failures.append(f"rules do not load: {e}")
        return outcome
    for info in ruleset.rules:
        if info.kind != "detection":
            continue
        outcome.rules += 1
        test_file = case_file_for(info.path, tests_dir)
        if not test_file.is_file():
            outcome.failures.append(f"rule {info.title!r} ({info.path}) has no test file {test_file}")
            continue
        try:
            cases = load_cases(test_file)
        except CaseFileError as e:
            outcome.failures.append(str(e))
            continue
        run_rule_cases(ruleset, info, cases, outcome, success_only=info.success_only)
    return outcome
