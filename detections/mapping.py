"""pySigma processing pipelines: how Sigma field names meet the fields kubesigma really has.

Two pipelines share one field mapping:
* `evaluation_pipeline()`: what the engine applies before compiling. It maps the synthetic fields
  of SigmaHQ's rules onto raw audit paths (`hostPath`, `capabilities`, top-level `apiGroup`,
  Elastic-style `gcp.audit.method_name`), rewrites the `responseStatus.code: ALLOW` quirk and fills
  `expand` placeholders from the named value lists.
* `kubesigma_pipeline()`: the same plus the prefixes under which alerts index the event
  (`kubernetes.audit.*`, `gcp.audit.*`, `aws.cloudtrail.*`, see connectors/model/logsources.py), shipped to
  sigma-cli as `-p kubesigma` so converted queries hit the indexed documents.

The `responseStatus.code: 'ALLOW'` quirk: an HTTP status code is never the word ALLOW; the word is
the authorizer's decision, which audit Events carry as the annotation
`authorization.k8s.io/decision: allow` (`forbid` when denied). A `responseStatus.code` compared
with a non-numeric word (allow, forbid, deny) is therefore read as that decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sigma.processing.conditions import IncludeFieldCondition, LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddFieldnamePrefixTransformation,
    FieldMappingTransformation,
    ValueListPlaceholderTransformation,
)
from sigma.processing.transformations.base import DetectionItemTransformation
from sigma.rule import SigmaDetectionItem
from sigma.types import SigmaString, SpecialChars

from kubesigma.connectors.model.logsources import PROFILES
from kubesigma.detections.lists import LISTS_DIR, load_value_lists
from kubesigma.detections.normalized import (
    ExecCommandTransformation,
    OutcomeFieldTransformation,
    OutcomeGateTransformation,
)

DECISION_FIELD = "annotations.authorization.k8s.io/decision"

# Pod specs appear in pods and in every workload template; SigmaHQ's synthetic fields mean "anywhere".
_POD_SPECS = (
    "requestObject.spec",
    "requestObject.spec.template.spec",
    "requestObject.spec.jobTemplate.spec.template.spec",
)
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

KUBERNETES_FIELDS: dict[str | None, str | list[str]] = {
    "hostPath": [f"{spec}.volumes.hostPath.path" for spec in _POD_SPECS],
    "capabilities": [
        f"{spec}.{containers}.securityContext.capabilities.add"
        for spec in _POD_SPECS
        for containers in _CONTAINER_LISTS
    ],
    "apiGroup": "objectRef.apiGroup",
}

# Elastic's gcp.audit.* names (used by SigmaHQ's GCP rules) and the `data.protoPayload.*` spelling of
# the break-glass rule, onto the raw Cloud Audit LogEntry.
GCP_FIELDS: dict[str | None, str | list[str]] = {
    "gcp.audit.method_name": "protoPayload.methodName",
    "gcp.audit.service_name": "protoPayload.serviceName",
    "gcp.audit.resource_name": "protoPayload.resourceName",
    "gcp.audit.authentication_info.principal_email": "protoPayload.authenticationInfo.principalEmail",
    "gcp.audit.request_metadata.caller_ip": "protoPayload.requestMetadata.callerIp",
    "gcp.audit.status.code": "protoPayload.status.code",
    "data.protoPayload.methodName": "protoPayload.methodName",
    "data.protoPayload.resource.type": "resource.type",
    "data.protoPayload.logName": "logName",
}

# Where alerts put each logsource's record (connectors/model/logsources.py).
INDEX_PREFIXES = {key: profile.index_prefix for key, profile in PROFILES.items()}

_DECISION_WORDS = {"allow", "forbid", "deny"}
# A LogEntry's logName is `projects/<p>/logs/<id>`; rules often name only the log id.
_LOG_NAME_ROOTS = ("projects/", "organizations/", "folders/", "billingaccounts/")


@dataclass
class StatusWordToDecisionTransformation(DetectionItemTransformation):
    """`responseStatus.code: ALLOW` means the authorization decision annotation (see module doc)."""

    def apply_detection_item(self, detection_item: SigmaDetectionItem) -> SigmaDetectionItem | None:
        values = detection_item.value
        if values and all(
            isinstance(v, SigmaString) and not v.contains_special() and str(v).lower() in _DECISION_WORDS
            for v in values
        ):
            detection_item.field = DECISION_FIELD
            detection_item.value = [
                SigmaString("forbid" if str(v).lower() == "deny" else str(v).lower()) for v in values
            ]
            return detection_item
        return None


@dataclass
class LogIdSuffixTransformation(DetectionItemTransformation):
    """`logName: cloudaudit.googleapis.com/activity` matches `projects/<p>/logs/cloudaudit...%2Factivity`."""

    def apply_detection_item(self, detection_item: SigmaDetectionItem) -> SigmaDetectionItem | None:
        changed = False
        values = []
        for v in detection_item.value:
            if (
                isinstance(v, SigmaString)
                and not v.startswith(SpecialChars.WILDCARD_MULTI)
                and not str(v).lower().startswith(_LOG_NAME_ROOTS)
            ):
                v = SpecialChars.WILDCARD_MULTI + ("/" + v)
                changed = True
            values.append(v)
        if changed:
            detection_item.value = values
            return detection_item
        return None


def _mapping_items() -> list[ProcessingItem]:
    # pySigma binds each condition object to one item: build fresh ones per item.
    def k8s() -> LogsourceCondition:
        return LogsourceCondition(product="kubernetes", service="audit")

    def gcp() -> LogsourceCondition:
        return LogsourceCondition(product="gcp", service="gcp.audit")

    return [
        ProcessingItem(
            identifier="kubesigma_status_word_is_decision",
            transformation=StatusWordToDecisionTransformation(),
            rule_conditions=[k8s()],
            field_name_conditions=[IncludeFieldCondition(fields=["responseStatus.code"])],
        ),
        ProcessingItem(
            identifier="kubesigma_kubernetes_fields",
            transformation=FieldMappingTransformation(KUBERNETES_FIELDS),
            rule_conditions=[k8s()],
        ),
        ProcessingItem(
            identifier="kubesigma_gcp_fields",
            transformation=FieldMappingTransformation(GCP_FIELDS),
            rule_conditions=[gcp()],
        ),
        ProcessingItem(
            identifier="kubesigma_gcp_log_id",
            transformation=LogIdSuffixTransformation(),
            rule_conditions=[gcp()],
            field_name_conditions=[IncludeFieldCondition(fields=["logName"])],
        ),
        ProcessingItem(
            identifier="kubesigma_value_lists",
            transformation=ValueListPlaceholderTransformation(),
        ),
        # Normalized fields (detections/normalized.py).
        ProcessingItem(identifier="kubesigma_outcome_field", transformation=OutcomeFieldTransformation()),
        ProcessingItem(
            identifier="kubesigma_exec_command",
            transformation=ExecCommandTransformation(),
            rule_conditions=[k8s()],
        ),
    ]


def evaluation_pipeline(
    list_paths: Iterable[Path | str] = (LISTS_DIR,), lists: dict[str, list[str]] | None = None
) -> ProcessingPipeline:
    """The mapping the engine applies to every rule: raw event paths, lists expanded.

    `lists` (name → values) replaces reading `list_paths`, for engines rebuilt from a pickle.
    """
    return ProcessingPipeline(
        name="kubesigma evaluation (raw audit paths)",
        priority=20,
        items=_mapping_items(),
        vars=dict(lists if lists is not None else load_value_lists(list_paths)),
    )


def kubesigma_pipeline() -> ProcessingPipeline:
    """Fields as kubesigma indexes them in Elasticsearch alerts: for `sigma convert -p kubesigma`."""
    prefix_items = [
        ProcessingItem(
            identifier=f"kubesigma_prefix_{product}_{service}",
            transformation=AddFieldnamePrefixTransformation(prefix),
            rule_conditions=[LogsourceCondition(product=product, service=service)],
        )
        for (product, service), prefix in INDEX_PREFIXES.items()
    ]
    # Queries see every record, refused ones too: rules about something done say so in the query (the
    # engine checks it per event). First, as it looks for rules that name the outcome themselves.
    gate = ProcessingItem(identifier="kubesigma_outcome_gate", transformation=OutcomeGateTransformation())
    return ProcessingPipeline(
        name="kubesigma (alert index fields)",
        priority=20,
        items=[gate, *_mapping_items(), *prefix_items],
        vars=dict(load_value_lists((LISTS_DIR,))),
    )
