"""The shared model every role reads: the normalized event, the records that do not become one, the
rule metadata alerts carry, the alert, and what is known per logsource.

`connectors/` is the lowest role (it imports neither `detections/` nor `pipeline/`), so the model lives
here, and every role imports it:

    event.py       AuditEvent (one serialization: `to_bytes`), LogSource, Source, Cloud
    records.py     RawRecord, Skipped, DeadLetter
    rule.py        RuleInfo: what an alert says about its rule
    alert.py       Alert (ECS), the alert and event documents, every document id
    logsources.py  LogSourceProfile: one object per logsource
    coders.py      the Beam coders of these types
"""

from kubesigma.connectors.model.event import (
    AWS_CLOUDTRAIL,
    GCP_AUDIT,
    KUBERNETES_AUDIT,
    AuditEvent,
    Cloud,
    LogSource,
    Source,
)
from kubesigma.connectors.model.records import DeadLetter, RawRecord, Skipped
from kubesigma.connectors.model.rule import RuleInfo

__all__ = [
    "AWS_CLOUDTRAIL",
    "GCP_AUDIT",
    "KUBERNETES_AUDIT",
    "AuditEvent",
    "Cloud",
    "DeadLetter",
    "LogSource",
    "RawRecord",
    "RuleInfo",
    "Skipped",
    "Source",
]
