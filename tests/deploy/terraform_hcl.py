"""Reading the terraform modules for tests: python-hcl2 parses them; `render` substitutes the plain
references (`${var.x}`, `${local.x}`, `${resource.attr}`) a test gives values for. Terraform itself, its
providers and the clouds cannot run here (no registry access for providers), so the tests check what the
modules hand to kubesigma and rebuild the data path they describe where a local peer exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2] / "terraform"
MODULES = ("gke", "eks")
_REF = re.compile(r"\$\{([^}]+)\}")


def load(module: str) -> dict[str, Any]:
    """Every top-level block of a module's .tf files, merged: {"variable": [...], "resource": [...], ...}."""
    merged: dict[str, list[Any]] = {}
    for path in sorted((ROOT / module).glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle).items():
                if not kind.startswith("__"):
                    merged.setdefault(kind, []).extend(blocks)
    return merged


def unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def named(blocks: list[dict[str, Any]], *path: str) -> dict[str, Any]:
    """The block at `path` ("resource type", "name") among parsed blocks."""
    for block in blocks:
        node: Any = block
        for key in path:
            node = node.get(f'"{key}"', node.get(key)) if isinstance(node, dict) else None
            if node is None:
                break
        else:
            return node
    raise KeyError(f"no block {' '.join(path)}")


def render(value: str, values: dict[str, str]) -> str:
    """`value` with each `${ref}` replaced from `values`; a reference the test did not give is an error."""

    def one(match: re.Match[str]) -> str:
        ref = match.group(1).strip()
        if ref not in values:
            raise KeyError(f"{value!r}: no value for ${{{ref}}}")
        return values[ref]

    return _REF.sub(one, unquote(value))


def output_list(module: dict[str, Any], name: str, values: dict[str, str]) -> list[str]:
    return [render(item, values) for item in named(module["output"], name)["value"]]
