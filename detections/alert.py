"""The one alert type: an ECS document, also the source of the Elasticsearch mapping.

Alerts are rare next to events, so they are built with pydantic, where validation and a typed schema
matter more than microseconds. `alert_id` is a pure function of the rule and the event's identity, so
replays and retries write the same document (Elasticsearch `_id`) instead of a duplicate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ALERT_ID_VERSION = "v1"


def alert_id(rule_id: str, *identity: str) -> str:
    """Deterministic alert id: the same rule on the same event (or group and window) gives the same id."""
    h = hashlib.sha256("\x1f".join((ALERT_ID_VERSION, rule_id, *identity)).encode("utf-8"))
    return h.hexdigest()[:40]


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


def iso_time(epoch: float) -> str:
    """RFC 3339 UTC with microseconds, as ECS `@timestamp` wants."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
