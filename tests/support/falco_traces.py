"""The Falco project's captured audit traces, read in place from ../shared/datasets (never copied)."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.model import RawRecord
from kubesigma.connectors.sources.files import read_file
from support.paths import FALCO_TRACES


def falco_events() -> list[dict[str, Any]]:
    """The 51 audit Events of the Falco traces, in file order (the deliberately bad record left out)."""
    events = []
    for path in sorted(FALCO_TRACES.glob("*.json")):
        for item in read_file(str(path)):
            if not isinstance(item, RawRecord):
                continue
            value = item.value
            if isinstance(value, dict) and value.get("kind") == "Event":
                events.append(value)
    return events
