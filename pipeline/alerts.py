"""From a (rule, event) match to the ECS alert analysts read in Kibana: redacted, sized, with a
deterministic id (the rule and the event's identity), and the event where Elastic's integrations keep it."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.event import AWS_CLOUDTRAIL, GCP_AUDIT, AuditEvent, LogSource
from kubesigma.connectors.redact import home_of, outgoing_document
from kubesigma.detections.alert import (
    Alert,
    CloudAccount,
    CloudFields,
    ClusterFields,
    EventFields,
    KubesigmaFields,
    OrchestratorFields,
    RuleFields,
    SourceFields,
    ThreatFields,
    ThreatTechnique,
    UserAgentFields,
    UserFields,
    alert_id,
    iso_time,
)
from kubesigma.detections.rule import RuleInfo


def view_for(rule: RuleInfo, event: AuditEvent) -> tuple[LogSource, dict[str, Any]]:
    """The event's document under the rule's logsource (a GKE record is seen both ways)."""
    for logsource, doc in event.views:
        if (logsource.product, logsource.service) == (rule.logsource.product, rule.logsource.service):
            return logsource, doc
    return event.views[0]


def _outcome(logsource: LogSource, doc: dict[str, Any]) -> str | None:
    if logsource == AWS_CLOUDTRAIL:
        return "failure" if doc.get("errorCode") else "success"
    status = doc.get("responseStatus")
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(code, int):
        return "success" if code < 400 else "failure"
    return None


def _action(logsource: LogSource, doc: dict[str, Any]) -> str | None:
    if logsource == AWS_CLOUDTRAIL:
        return doc.get("eventName")
    if logsource == GCP_AUDIT:
        payload = doc.get("protoPayload")
        return payload.get("methodName") if isinstance(payload, dict) else None
    return doc.get("verb")


def threat_of(rule: RuleInfo) -> list[ThreatFields]:
    techniques = [
        ThreatTechnique(id=t, reference=f"https://attack.mitre.org/techniques/{t.replace('.', '/')}/")
        for t in rule.techniques
    ]
    if not techniques and not rule.tactics:
        return []
    return [ThreatFields(technique=techniques, tactic={"name": list(rule.tactics)} if rule.tactics else {})]


# A rule's part of its alerts, built once per rule: parsing its tags for ATT&CK on every alert cost more
# than the rest of the alert. Keyed by every field it is built from, so a changed rule is rebuilt.
_RULE_PARTS: dict[tuple[Any, ...], tuple[RuleFields, list[ThreatFields]]] = {}


def _rule_parts(rule: RuleInfo) -> tuple[RuleFields, list[ThreatFields]]:
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
        parts = _RULE_PARTS[key] = (fields, threat_of(rule))
    return parts


def build_alert(rule: RuleInfo, event: AuditEvent, *, soft_limit: int, **kubesigma: Any) -> Alert:
    """The alert for one rule firing on one event. Extra `kubesigma` fields (correlation, suppression)
    pass through; their callers supply the matching `alert_id` identity."""
    logsource, doc = view_for(rule, event)
    copy, notes = outgoing_document(logsource, doc, event.size, soft_limit)
    home = home_of(logsource)
    namespace, _, leaf = home.partition(".")
    embedded = {namespace: {leaf: copy}}
    object_ref = doc.get("objectRef") if home == "kubernetes.audit" else None
    resource: dict[str, str] = {}
    if isinstance(object_ref, dict):
        for key, ecs in (("name", "name"), ("resource", "type")):
            if isinstance(object_ref.get(key), str):
                resource[ecs] = object_ref[key]
    identity = kubesigma.pop("identity", (event.identity,))
    cloud = event.cloud
    rule_fields, threat = _rule_parts(rule)
    return Alert(
        timestamp=iso_time(event.time),
        event=EventFields(
            id=event.event_id,
            severity=rule.severity,
            action=_action(logsource, doc),
            outcome=_outcome(logsource, doc),
            provider=logsource.product,
            original_size=event.size,
        ),
        rule=rule_fields,
        threat=threat,
        user=UserFields(name=event.user_name),
        source=SourceFields(ip=event.source_ip),
        user_agent=UserAgentFields(original=event.user_agent),
        orchestrator=OrchestratorFields(
            cluster=ClusterFields(name=event.cluster),
            namespace=object_ref.get("namespace") if isinstance(object_ref, dict) else None,
            resource=resource,
        ),
        cloud=CloudFields(
            provider=cloud.provider, account=CloudAccount(id=cloud.account_id), region=cloud.region
        )
        if cloud
        else None,
        kubesigma=KubesigmaFields(
            alert_id=alert_id(rule.id, *identity),
            source=event.source.as_dict(),
            logsource=str(logsource),
            truncated_fields=notes,
            event_truncated=event.truncated,
            **kubesigma,
        ),
        **embedded,
    )
