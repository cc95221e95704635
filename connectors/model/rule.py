"""What an alert says about the rule that raised it: identity, meaning, severity, ATT&CK tags.

The engine compiles a rule's detection logic; everything downstream (alerts, suppression, summaries,
docs) needs only this metadata.
"""

from __future__ import annotations

import functools
import pickle
import re
from dataclasses import dataclass, fields
from typing import Any

from kubesigma.connectors.model.event import LogSource

# Elastic's risk-score scale for Sigma levels.
SEVERITY = {"informational": 1, "low": 21, "medium": 47, "high": 73, "critical": 99}

_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
_TACTIC = re.compile(r"^attack\.([a-z][a-z_-]+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A loaded Sigma rule's metadata (single-event or correlation)."""

    id: str
    title: str
    level: str
    logsource: LogSource
    path: str = ""
    description: str = ""
    status: str | None = None
    tags: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    name: str | None = None  # Sigma `name`, how correlation rules may refer to it
    group_by: tuple[str, ...] = ()  # correlation rules: the fields that key a group
    kind: str = "detection"  # "detection" | "correlation"
    # Fires only on requests the API server let happen (the rule names no `event.outcome` of its own:
    # detections/normalized.py); checked once per event, against its logsource profile's `succeeded`.
    success_only: bool = False

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # Every alert candidate carries its rule, and pickles it wherever Beam moves the candidate: the
        # fields are pickled once per rule object, and read back as one shared object per rule.
        known = _PICKLED.get(id(self))
        if known is None or known[0] is not self:
            if len(_PICKLED) >= _MAX_RULES:
                _PICKLED.clear()
            fields_ = tuple(getattr(self, name) for name in _FIELDS)
            known = _PICKLED[id(self)] = (self, pickle.dumps(fields_, pickle.HIGHEST_PROTOCOL))
        return _rule_info, (known[1],)

    @property
    def severity(self) -> int:
        return SEVERITY.get(self.level, SEVERITY["medium"])

    @property
    def techniques(self) -> tuple[str, ...]:
        """ATT&CK technique ids from tags: `attack.t1609` -> `T1609`."""
        out = []
        for tag in self.tags:
            m = _TECHNIQUE.match(tag)
            if m:
                out.append(m.group(1).upper())
        return tuple(out)

    @property
    def tactics(self) -> tuple[str, ...]:
        """ATT&CK tactic names from tags: `attack.privilege-escalation`."""
        out = []
        for tag in self.tags:
            m = _TACTIC.match(tag)
            if (
                m
                and not _TECHNIQUE.match(tag)
                and not tag.lower().startswith("attack.g")
                and not tag.lower().startswith("attack.s0")
            ):
                out.append(m.group(1).lower().replace("_", "-"))
        return tuple(out)


_FIELDS = tuple(f.name for f in fields(RuleInfo))
_MAX_RULES = 4096  # rule objects whose pickles are kept (a rule set has tens to a few thousand)
_PICKLED: dict[int, tuple[RuleInfo, bytes]] = {}


@functools.lru_cache(maxsize=_MAX_RULES)
def _rule_info(pickled_fields: bytes) -> RuleInfo:
    """The rule whose fields pickled to these bytes (the same object for the same bytes)."""
    return RuleInfo(*pickle.loads(pickled_fields))
