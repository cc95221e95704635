"""Named value lists for Sigma `expand` placeholders (`field|expand: '%admin_users%'`).

Each file in this folder is one list, named by its file name without extension:
  * `<name>.txt`: one value per line; blank lines and lines starting with `#` are ignored.
  * `<name>.yml` / `<name>.yaml`: a YAML sequence of strings or numbers.
  * `<name>/`: a folder whose files (as above) together make the list: `platform_identities/` holds
    one file per platform (Kubernetes, GKE, EKS, AKS, add-ons).
Values are Sigma strings: `*` and `?` are wildcards (escape them with a backslash). Later
folders in `EngineConfig.list_paths` extend lists of the same name from earlier ones, so a site adds
its own platform identities or namespaces without editing a shipped file or rule. The same lists
feed the sigma-cli plugin pipeline, so converted queries expand identically.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

LISTS_DIR = Path(__file__).resolve().parent


class ValueListError(ValueError):
    """A list file that cannot be read as a list of strings; the message names the file."""


def _read_list(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        return [
            line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueListError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return []
    if not isinstance(data, list) or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in data
    ):
        raise ValueListError(f"{path}: a value list must be a YAML sequence of strings or numbers")
    return [str(v) for v in data]


LIST_SUFFIXES = (".txt", ".yml", ".yaml")


def load_value_lists(folders: Iterable[Path | str]) -> dict[str, list[str]]:
    """All lists found in the folders (list files, and folders of list files), keyed by name; a
    later folder's list of a name already seen extends it."""
    lists: dict[str, list[str]] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueListError(f"{folder}: value list folder does not exist")
        for path in sorted(folder.iterdir()):
            if path.is_dir() and not path.name.startswith(("_", ".")):
                values = [v for part in _list_files(path) for v in _read_list(part)]
            elif path.suffix in LIST_SUFFIXES and path.is_file():
                values = _read_list(path)
            else:
                continue
            merged = lists.setdefault(path.stem if path.is_file() else path.name, [])
            merged.extend(v for v in values if v not in merged)
    return lists


def _list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in LIST_SUFFIXES and p.is_file())
