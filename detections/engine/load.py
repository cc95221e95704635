"""Reading Sigma files into pySigma objects, with a report per rule that names file and line.

A bad rule never reaches the matcher: every failure (YAML syntax, Sigma structure, unknown
modifier, unresolved placeholder, a construct the engine cannot evaluate) becomes a `RuleReport`
with the file and, where it can be found, the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

RULE_SUFFIXES = (".yml", ".yaml")
# libyaml's loader when present: the pure-Python one dominates load time for large packs.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class RuleReport:
    """The outcome of loading one rule (or one file that failed before rules could be told apart)."""

    path: str
    rule_id: str | None
    title: str | None
    ok: bool
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    line: int | None = None
    kind: str = "detection"  # detection | correlation | filter

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        who = f"{self.rule_id or '-'} {self.title or ''}".strip()
        status = "loaded" if self.ok else f"REFUSED: {self.error}"
        text = f"{where}: {who}: {status}"
        for w in self.warnings:
            text += f"\n    warning: {w}"
        return text


class RuleLoadError(ValueError):
    """Some rules failed to load or compile; `reports` holds every report, str() the failing ones."""

    def __init__(self, reports: Sequence[RuleReport]):
        self.reports = list(reports)
        failed = [r for r in self.reports if not r.ok]
        super().__init__(f"{len(failed)} Sigma rule(s) refused:\n" + "\n".join(str(r) for r in failed))


@dataclass
class ParsedFile:
    path: str
    text: str
    rules: list[SigmaRule | SigmaCorrelationRule]
    filters: list[SigmaFilter]
    reports: list[RuleReport]  # failures found while parsing (successes are reported later)
    doc_lines: list[int]  # first line (1-based) of each YAML document


def rule_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[RuleReport]]:
    """Every .yml/.yaml file under the paths (recursively, sorted); a missing path is a report."""
    files: list[Path] = []
    missing: list[RuleReport] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files.extend(sorted(f for f in path.rglob("*") if f.suffix in RULE_SUFFIXES and f.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(RuleReport(str(path), None, None, False, "no such file or folder"))
    return files, missing


def _doc_start_lines(text: str) -> list[int]:
    try:
        return [
            node.start_mark.line + 1 for node in yaml.compose_all(text, Loader=_LOADER) if node is not None
        ]
    except yaml.YAMLError:
        return [1]


def find_line(text: str, error: BaseException, start: int = 1, end: int | None = None) -> int | None:
    """Best-effort line of an error: pySigma's location, else the first line naming a quoted token."""
    source = getattr(error, "source", None)
    if isinstance(source, SigmaRuleLocation) and source.line:
        return source.line
    lines = text.splitlines()
    end = end or len(lines)
    tokens = re.findall(r"'([^']+)'", str(error))
    # Modifier errors quote the modifier; rules spell it after a `|`.
    for token in tokens:
        for n in range(start, min(end, len(lines)) + 1):
            line = lines[n - 1]
            if f"|{token}" in line or re.search(rf"(^|[\s'\"|:-]){re.escape(token)}([\s'\":|]|$)", line):
                return n
    for key in ("condition", "detection"):
        if key in str(error).lower():
            for n in range(start, min(end, len(lines)) + 1):
                if lines[n - 1].lstrip().startswith(key + ":"):
                    return n
    return None


def _describe(error: BaseException) -> str:
    text = str(error)
    # pySigma prefixes the absolute file path; the report already names the file.
    text = re.sub(r"^\S+\.ya?ml(:\d+)?:\s*", "", text)
    return re.sub(r" in /\S+$", "", text)


def parse_file(path: str, text: str) -> ParsedFile:
    result = ParsedFile(path, text, [], [], [], [1])
    try:
        docs = list(yaml.load_all(text, Loader=_LOADER))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        result.reports.append(RuleReport(path, None, None, False, f"invalid YAML: {problem}", line=line))
        return result
    docs_present = [d for d in docs if d is not None]
    if not docs_present:
        result.reports.append(RuleReport(path, None, None, False, "file holds no Sigma rule"))
        return result
    for d in docs_present:
        if not isinstance(d, dict):
            result.reports.append(RuleReport(path, None, None, False, "a Sigma rule must be a YAML mapping"))
            return result
    try:
        collection = SigmaCollection.from_dicts(
            docs,
            collect_errors=True,
            source=SigmaRuleLocation(Path(path)),
            collect_filters=True,
            resolve_references=False,
        )
    except SigmaError as e:
        result.reports.append(RuleReport(path, None, None, False, _describe(e), line=find_line(text, e)))
        return result
    except Exception as e:  # pySigma raises plain exceptions on some malformed input
        result.reports.append(RuleReport(path, None, None, False, f"{type(e).__name__}: {e}", line=None))
        return result
    if len(docs_present) > 1 and any(rule.errors for rule in [*collection.rules, *collection.filters]):
        result.doc_lines = _doc_start_lines(text)  # only to place errors of multi-document files
    for n, rule in enumerate([*collection.rules, *collection.filters]):
        start = result.doc_lines[n] if n < len(result.doc_lines) else 1
        stop = result.doc_lines[n + 1] - 1 if n + 1 < len(result.doc_lines) else None
        if rule.errors:
            err = rule.errors[0]
            result.reports.append(
                RuleReport(
                    path,
                    str(rule.id) if rule.id else None,
                    rule.title or None,
                    False,
                    _describe(err),
                    line=find_line(text, err, start, stop),
                    kind=kind_of(rule),
                )
            )
        elif isinstance(rule, SigmaFilter):
            result.filters.append(rule)
        else:
            result.rules.append(rule)
    for err in collection.errors:
        if not any(err in r.errors for r in [*collection.rules, *collection.filters]):
            result.reports.append(
                RuleReport(path, None, None, False, _describe(err), line=find_line(text, err))
            )
    return result


def kind_of(rule: Any) -> str:
    if isinstance(rule, SigmaCorrelationRule):
        return "correlation"
    if isinstance(rule, SigmaFilter):
        return "filter"
    return "detection"


def read_sources(paths: Iterable[str | Path]) -> tuple[list[tuple[str, str]], list[RuleReport]]:
    """(path, text) of every rule file; unreadable files are reports."""
    files, reports = rule_files(paths)
    sources = []
    for f in files:
        try:
            sources.append((str(f), f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            reports.append(RuleReport(str(f), None, None, False, f"cannot read: {e}"))
    return sources, reports
