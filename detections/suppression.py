"""Alert suppression without Beam: which alerts are repeats of one another, and a run of folded repeats.

The first alert of a rule and group goes out; repeats within the window fold into one follow-up
alert. A group is the correlation rule's group-by values, or for single-event rules the identity
and the object acted on (the same person reading the same secret again is a repeat; reading another
one is not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubesigma.connectors.model import AuditEvent, RuleInfo
from kubesigma.connectors.model.logsources import profile_of

# Folded alert ids listed in a follow-up alert (the total is always given).
MAX_FOLDED_IDS = 100


def suppression_group(rule: RuleInfo, event: AuditEvent) -> tuple[str, ...]:
    """The group of a single-event alert: who acted, on what."""
    logsource, doc = event.view(rule.logsource)
    return (event.user_name or "", profile_of(logsource).object_of(doc))


@dataclass
class FoldedRun:
    """One window of a rule and group: opened by the alert that went out, folding later repeats."""

    start: float
    end: float
    opener: str  # the alert id that went out
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    ids: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, time: float, window: float, opener: str) -> FoldedRun:
        return cls(start=time, end=time + window, opener=opener)

    def covers(self, time: float) -> bool:
        """A repeat of this run (late ones from up to one window before it count too)."""
        return self.start - (self.end - self.start) <= time < self.end

    def fold(self, time: float, alert_id: str) -> None:
        if not self.count:
            self.first_seen = self.last_seen = time
        self.first_seen = min(self.first_seen, time)
        self.last_seen = max(self.last_seen, time)
        self.count += 1
        if len(self.ids) < MAX_FOLDED_IDS:
            self.ids.append(alert_id)
