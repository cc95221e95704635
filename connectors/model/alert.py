"""The one alert type, and the one place alert and event documents are built.

An alert is an ECS document (the `Alert` pydantic model, also the source of the Elasticsearch mapping)
with the record where Elastic's integrations keep it, redacted and slimmed above the soft size limit.
`build_alert` builds the validated model; `alert_document`, what the pipeline writes, builds the same
document as plain dicts (validating and dumping the model cost more than the rest of an alert's way
through the pipeline; a test holds the two equal).

Ids are pure functions of what an alert is about (the rule and the record; for correlations the group
and the window's first event), so replays and retries write the same document (Elasticsearch `_id`)
instead of a duplicate. Every id scheme is here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kubesigma.connectors.model.event import AuditEvent, LogSource
from kubesigma.connectors.model.logsources import KUBERNETES, LogSourceProfile, profile_of
from kubesigma.connectors.model.rule import RuleInfo
from kubesigma.connectors.redact import redact_document

ALERT_ID_VERSION = "v1"


def document_id(*parts: str) -> str:
    """A deterministic document id: a hash of the version of the id scheme and the parts."""
    h = hashlib.sha256("\x1f".join((ALERT_ID_VERSION, *parts)).encode("utf-8"))
    return h.hexdigest()[:40]


def alert_id(rule_id: str, *identity: str) -> str:
    """The same rule on the same event (or group and window) gives the same id."""
    return document_id(rule_id, *identity)


def match_alert_id(rule_id: str, event: AuditEvent) -> str:
    """The id of a single-event rule's alert on this event's request: the same for every stage of it."""
    return document_id(rule_id, event.request_id)


def group_text(group: tuple[str, ...]) -> str:
    """A correlation or suppression group (one value per group-by field) as one string."""
    return "\x1e".join(group)


def correlation_alert_id(rule_id: str, group: tuple[str, ...], first_identity: str) -> str:
    """The id of a correlation's alert: the rule, the group, and the first event of its window."""
    return document_id(rule_id, "correlation", group_text(group), first_identity)


def suppressed_alert_id(rule_id: str, group: tuple[str, ...], first_folded: str) -> str:
    """The id of a follow-up alert folding repeats: the rule, the group and the first folded alert."""
    return document_id(rule_id, "suppressed", group_text(group), first_folded)


def iso_time(epoch: float) -> str:
    """RFC 3339 UTC with microseconds, as ECS `@timestamp` wants."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- the ECS schema --------------------------------------------------------------------------------


class _ECS(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class EventFields(_ECS):
    kind: str = "alert"
    id: str | None = None
    severity: int
    category: list[str] = Field(default_factory=lambda: ["iam"])
    type: list[str] = Field(default_factory=lambda: ["info"])
    action: str | None = None  # the audit verb or API method
    outcome: str | None = None  # success | failure | unknown
    provider: str | None = None  # kubernetes | k8s.io | eks.amazonaws.com ...
    dataset: str = "kubesigma.alerts"
    created: str | None = None
    original_size: int | None = None


class RuleFields(_ECS):
    id: str
    name: str
    description: str = ""
    level: str
    ruleset: str = "sigma"
    reference: str | None = None
    category: str | None = None  # the rule's logsource
    tags: list[str] = Field(default_factory=list)


class ThreatTechnique(_ECS):
    id: str
    reference: str


class ThreatFields(_ECS):
    framework: str = "MITRE ATT&CK"
    technique: list[ThreatTechnique] = Field(default_factory=list)
    tactic: dict[str, list[str]] = Field(default_factory=dict)


class UserFields(_ECS):
    name: str | None = None


class SourceFields(_ECS):
    ip: str | None = None


class UserAgentFields(_ECS):
    original: str | None = None


class ClusterFields(_ECS):
    name: str | None = None


class OrchestratorFields(_ECS):
    type: str = "kubernetes"
    cluster: ClusterFields = Field(default_factory=ClusterFields)
    namespace: str | None = None
    resource: dict[str, str] = Field(default_factory=dict)  # name, type


class CloudAccount(_ECS):
    id: str | None = None


class CloudFields(_ECS):
    provider: str
    account: CloudAccount = Field(default_factory=CloudAccount)
    region: str | None = None


class Suppression(_ECS):
    """Present on follow-up alerts that fold repeats of one rule and group."""

    count: int
    first_seen: str
    last_seen: str
    alert_ids: list[str]
    alert_ids_total: int


class KubesigmaFields(_ECS):
    alert_id: str
    source: dict[str, Any] = Field(default_factory=dict)  # where the event was read
    logsource: str
    truncated_fields: list[str] = Field(default_factory=list)  # objects dropped from the copy, and why
    event_truncated: bool = False  # the event was recovered from a cut message
    correlation: dict[str, Any] | None = None  # group, window, contributing events
    suppression: Suppression | None = None


class Alert(_ECS):
    timestamp: str = Field(alias="@timestamp")
    event: EventFields
    rule: RuleFields
    threat: list[ThreatFields] = Field(default_factory=list)
    user: UserFields = Field(default_factory=UserFields)
    source: SourceFields = Field(default_factory=SourceFields)
    user_agent: UserAgentFields = Field(default_factory=UserAgentFields)
    orchestrator: OrchestratorFields = Field(default_factory=OrchestratorFields)
    cloud: CloudFields | None = None
    kubernetes: dict[str, Any] = Field(default_factory=dict)  # {"audit": <the event>} as Elastic lays it out
    gcp: dict[str, Any] | None = None  # {"audit": <LogEntry>} for gcp.audit rules
    aws: dict[str, Any] | None = None  # {"cloudtrail": <record>} for CloudTrail rules
    kubesigma: KubesigmaFields

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


# -- building documents ----------------------------------------------------------------------------


# The last large record made to leave, by the identity of what it was made from: an event several rules
# match gives each alert and its events-index document the same record, redacted once (a fuzzed 600 KB
# record cost a JSON dump and a search per document: 10 ms each). One tuple, replaced whole: threads
# sharing it at worst make a record twice. It holds its source, so that identity is not reused while
# kept; records are written, never changed. Small records, nearly all of them, are made each time.
_REUSED_MIN = 64 * 1024
_last_outgoing: tuple[Any, ...] = (None, None, 0, 0, None, ())


def outgoing_record(
    profile: LogSourceProfile, doc: dict[str, Any], size: int, soft_limit: int
) -> tuple[dict[str, Any], list[str]]:
    """The copy of a record that may leave the pipeline: redacted, and over the soft limit without its
    bulky members (each named in the notes, with why)."""
    global _last_outgoing
    if size >= _REUSED_MIN:
        last = _last_outgoing
        if last[0] is doc and last[1] is profile and last[2] == size and last[3] == soft_limit:
            return last[4], list(last[5])
    source = doc
    notes: list[str] = []
    if size > soft_limit:
        doc = dict(doc)
        why = f"record of {size} bytes over the {soft_limit}-byte soft limit"
        for dotted in profile.bulky:
            head, _, tail = dotted.partition(".")
            if tail:
                inner = doc.get(head)
                if isinstance(inner, dict) and tail in inner:
                    doc[head] = {k: v for k, v in inner.items() if k != tail}
                    notes.append(f"{profile.home}.{dotted}: dropped, {why}")
            elif head in doc:
                del doc[head]
                notes.append(f"{profile.home}.{head}: dropped, {why}")
    record = redact_document(doc)
    if size >= _REUSED_MIN:
        _last_outgoing = (source, profile, size, soft_limit, record, tuple(notes))
    return record, notes


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text_out(text: str | None) -> str | None:
    """A field copied from the record into ECS (a user agent, a user name) as it may leave: a client
    can put a bearer token in its user agent, and the redacted record copy does not cover this one."""
    return redact_document(text) if text else text


def _embedded(profile: LogSourceProfile, record: dict[str, Any]) -> dict[str, Any]:
    namespace, _, leaf = profile.home.partition(".")
    return {namespace: {leaf: record}}


def _threat(rule: RuleInfo) -> list[ThreatFields]:
    techniques = [
        ThreatTechnique(id=t, reference=f"https://attack.mitre.org/techniques/{t.replace('.', '/')}/")
        for t in rule.techniques
    ]
    if not techniques and not rule.tactics:
        return []
    return [ThreatFields(technique=techniques, tactic={"name": list(rule.tactics)} if rule.tactics else {})]


# A rule's part of its alerts, built once per rule: parsing its tags for ATT&CK on every alert cost more
# than the rest of the alert. Keyed by every field it is built from, so a changed rule is rebuilt. Held as
# the models (`build_alert`) and as their dumps (`alert_document`: shared by the rule's alerts, as
# documents are written, never changed).
@dataclass(frozen=True)
class _RuleParts:
    fields: RuleFields
    threat: list[ThreatFields]
    fields_document: dict[str, Any]
    threat_documents: list[dict[str, Any]]


_RULE_PARTS: dict[tuple[Any, ...], _RuleParts] = {}


def _rule_parts(rule: RuleInfo) -> _RuleParts:
    category = str(rule.logsource)
    key = (rule.id, rule.title, rule.description, rule.level, rule.references, category, rule.tags)
    parts = _RULE_PARTS.get(key)
    if parts is None:
        if len(_RULE_PARTS) >= 4096:
            _RULE_PARTS.clear()
        fields = RuleFields(
            id=rule.id,
            name=rule.title,
            description=rule.description,
            level=rule.level,
            reference=rule.references[0] if rule.references else None,
            category=category,
            tags=list(rule.tags),
        )
        threat = _threat(rule)
        parts = _RULE_PARTS[key] = _RuleParts(
            fields,
            threat,
            fields.model_dump(exclude_none=True),
            [t.model_dump(exclude_none=True) for t in threat],
        )
    return parts


def build_alert(
    rule: RuleInfo,
    event: AuditEvent,
    *,
    alert_id: str,
    soft_limit: int,
    correlation: dict[str, Any] | None = None,
    suppression: Suppression | None = None,
) -> Alert:
    """The alert of a rule on an event (for a correlation: the event that completed it). The event is
    shown as the rule saw it (a GKE record under `gcp.audit` for a gcp.audit rule)."""
    logsource, doc = event.view(rule.logsource)
    profile = profile_of(logsource)
    record, notes = outgoing_record(profile, doc, event.size, soft_limit)
    object_ref = doc.get("objectRef") if profile.home == KUBERNETES.home else None
    resource: dict[str, str] = {}
    if isinstance(object_ref, dict):
        for key, ecs in (("name", "name"), ("resource", "type")):
            if isinstance(object_ref.get(key), str):
                resource[ecs] = object_ref[key]
    cloud = event.cloud
    rule_parts = _rule_parts(rule)
    return Alert(
        timestamp=iso_time(event.time),
        event=EventFields(
            id=event.event_id,
            severity=rule.severity,
            action=profile.action(doc),
            outcome=profile.outcome(doc),
            provider=logsource.product,
            original_size=event.size,
        ),
        rule=rule_parts.fields,
        threat=rule_parts.threat,
        user=UserFields(name=_text_out(event.user_name)),
        source=SourceFields(ip=event.source_ip),
        user_agent=UserAgentFields(original=_text_out(event.user_agent)),
        orchestrator=OrchestratorFields(
            cluster=ClusterFields(name=event.cluster),
            namespace=_text(object_ref.get("namespace")) if isinstance(object_ref, dict) else None,
            resource=resource,
        ),
        cloud=CloudFields(
            provider=cloud.provider, account=CloudAccount(id=cloud.account_id), region=cloud.region
        )
        if cloud
        else None,
        kubesigma=KubesigmaFields(
            alert_id=alert_id,
            source=event.source.as_dict(),
            logsource=str(logsource),
            truncated_fields=notes,
            event_truncated=event.truncated,
            correlation=correlation,
            suppression=suppression,
        ),
        **_embedded(profile, record),
    )


def alert_document(
    rule: RuleInfo,
    event: AuditEvent,
    *,
    alert_id: str,
    soft_limit: int,
    correlation: dict[str, Any] | None = None,
    suppression: Suppression | None = None,
) -> dict[str, Any]:
    """`build_alert(...).to_json_dict()`, the JSON document every sink writes, built as a dict: the same
    keys in the same order, values of the same types (a test holds them equal). Validating and dumping
    the model took about 110 µs an alert, more than moving the alert through the pipeline; the model
    stays the schema (and the Elasticsearch mapping's source). The record inside is the event's own
    (redacted copies apart) and the rule's part is shared by its alerts, not copied: a document is
    written, never changed."""
    logsource, doc = event.view(rule.logsource)
    profile = profile_of(logsource)
    record, notes = outgoing_record(profile, doc, event.size, soft_limit)
    object_ref = doc.get("objectRef") if profile.home == KUBERNETES.home else None
    orchestrator: dict[str, Any] = {"type": "kubernetes", "cluster": _named(event.cluster)}
    resource: dict[str, str] = {}
    if isinstance(object_ref, dict):
        namespace = _text(object_ref.get("namespace"))
        if namespace is not None:
            orchestrator["namespace"] = namespace
        for key, ecs in (("name", "name"), ("resource", "type")):
            if isinstance(object_ref.get(key), str):
                resource[ecs] = object_ref[key]
    orchestrator["resource"] = resource
    event_fields: dict[str, Any] = {"kind": "alert", "id": event.event_id, "severity": rule.severity}
    event_fields["category"] = ["iam"]
    event_fields["type"] = ["info"]
    for key, value in (
        ("action", profile.action(doc)),
        ("outcome", profile.outcome(doc)),
        ("provider", logsource.product),
    ):
        if value is not None:
            event_fields[key] = value
    event_fields["dataset"] = "kubesigma.alerts"
    event_fields["original_size"] = event.size
    rule_parts = _rule_parts(rule)
    user = _text_out(event.user_name)
    agent = _text_out(event.user_agent)
    out: dict[str, Any] = {
        "@timestamp": iso_time(event.time),
        "event": event_fields,
        "rule": rule_parts.fields_document,
        "threat": rule_parts.threat_documents,
        "user": {} if user is None else {"name": user},
        "source": {} if event.source_ip is None else {"ip": event.source_ip},
        "user_agent": {} if agent is None else {"original": agent},
        "orchestrator": orchestrator,
    }
    cloud = event.cloud
    if cloud:
        out["cloud"] = {"provider": cloud.provider, "account": _named(cloud.account_id, "id")}
        if cloud.region is not None:
            out["cloud"]["region"] = cloud.region
    home, _, leaf = profile.home.partition(".")
    out["kubernetes"] = {}
    out[home] = {leaf: record}
    kubesigma: dict[str, Any] = {
        "alert_id": alert_id,
        "source": event.source.as_dict(),
        "logsource": str(logsource),
        "truncated_fields": notes,
        "event_truncated": event.truncated,
    }
    if correlation is not None:
        kubesigma["correlation"] = correlation
    if suppression is not None:
        kubesigma["suppression"] = suppression.model_dump(by_alias=True, exclude_none=True)
    out["kubesigma"] = kubesigma
    return out


def _named(value: str | None, key: str = "name") -> dict[str, str]:
    return {} if value is None else {key: value}


EVENT_SOFT_LIMIT = 1024 * 1024


def event_document(event: AuditEvent, soft_limit: int = EVENT_SOFT_LIMIT) -> dict[str, Any]:
    """The events-index document of one normalized event (for hunting): the ECS context fields and the
    redacted record where alerts keep it, slimmed above `soft_limit` bytes as in alerts. Its id hashes
    the event's identity, so events are indexed exactly once too."""
    profile = profile_of(event.logsource)
    record, dropped = outgoing_record(profile, event.document, event.size, soft_limit)
    doc: dict[str, Any] = {
        "@timestamp": iso_time(event.time),
        "event": {
            "kind": "event",
            "id": event.event_id,
            "dataset": "kubesigma.events",
            "provider": event.logsource.product,
        },
        **_embedded(profile, record),
        "orchestrator": {"type": "kubernetes", "cluster": {"name": event.cluster}},
        "kubesigma": {
            "event_id": document_id(event.identity),
            "logsource": str(event.logsource),
            "source": event.source.as_dict(),
            "event_truncated": event.truncated,
        },
    }
    if dropped:
        doc["kubesigma"]["truncated_fields"] = dropped
    if event.user_name:
        doc["user"] = {"name": _text_out(event.user_name)}
    if event.source_ip:
        doc["source"] = {"ip": event.source_ip}
    if event.user_agent:
        doc["user_agent"] = {"original": _text_out(event.user_agent)}
    if event.cloud:
        doc["cloud"] = {
            "provider": event.cloud.provider,
            "account": {"id": event.cloud.account_id},
            "region": event.cloud.region,
        }
    return doc


def home_of(logsource: LogSource) -> str:
    """Where a logsource's records sit in alert and event documents (`kubernetes.audit`)."""
    return profile_of(logsource).home
