"""The simulated audit log as a file: JSON lines, one audit Event a line, as kube-apiserver's log backend
writes them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson


def write_jsonl(events: Iterable[dict[str, Any]], out: str | Path) -> int:
    """Write events as JSON lines; returns how many were written."""
    count = 0
    with open(out, "wb") as fh:
        for event in events:
            fh.write(orjson.dumps(event))
            fh.write(b"\n")
            count += 1
    return count
