"""Engine configuration: which rules are switched off, which filter files tune them, where lists live.

Detection engineers tune a deployment without editing rules: a YAML file such as

    disabled_ids: [5d3b1c4e-...]
    disabled_tags: [attack.discovery]
    filters: [filters/]          # Sigma filter files or folders (relative to this file)
    lists: [lists/]              # extra value-list folders for `expand` placeholders
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubesigma.detections.lists import LISTS_DIR


class EngineConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


_KEYS = {"disabled_ids", "disabled_tags", "filters", "lists"}


@dataclass(frozen=True)
class EngineConfig:
    disabled_ids: frozenset[str] = frozenset()
    disabled_tags: frozenset[str] = frozenset()
    filter_paths: tuple[Path, ...] = ()
    list_paths: tuple[Path, ...] = field(default=(LISTS_DIR,))

    @classmethod
    def from_file(cls, path: str | Path) -> EngineConfig:
        path = Path(path)
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise EngineConfigError(f"{path}: cannot read engine configuration: {e}") from e
        except yaml.YAMLError as e:
            raise EngineConfigError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise EngineConfigError(f"{path}: engine configuration must be a YAML mapping")
        unknown = set(data) - _KEYS
        if unknown:
            raise EngineConfigError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")

        def strings(key: str) -> list[str]:
            value = data.get(key) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise EngineConfigError(f"{path}: `{key}` must be a list of strings")
            return value

        base = path.parent
        return cls(
            disabled_ids=frozenset(strings("disabled_ids")),
            disabled_tags=frozenset(t.lower() for t in strings("disabled_tags")),
            filter_paths=tuple(base / p for p in strings("filters")),
            list_paths=(LISTS_DIR, *(base / p for p in strings("lists"))),
        )
