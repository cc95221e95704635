"""The one SQLite oracle: Sigma rules converted by pySigma's SQLite backend (pysigma-backend-sqlite) and
run over events flattened into one table the way Zircolite does, an independent Sigma implementation.
The differential tests compare kubesigma's engine with it; bench/engine.py measures it as a peer.

The table: one row per event, nested keys joined with dots, lists stored as their JSON text, every
column `TEXT COLLATE NOCASE`, a Python REGEXP function. A flat row has no "any element of a list" and no
object values: `EngineVsSQLite` compares only pairs where no field of the rule lands on either.

Boolean policy (one for every user of this module): a JSON boolean is stored as the text `true` or
`false`, as JSON writes it and as Zircolite stores it. With the NOCASE columns this gives what
kubesigma's engine does (detections/engine/modifiers.py: `bool_leaf`, `scalar_str`):
- a Sigma boolean (`privileged: true`) matches JSON `true` and the strings "true", "True", "TRUE"
  (the backend writes `field='true' OR field=1`);
- a Sigma string `'true'` matches the same, JSON `true` compared as the text JSON writes;
- a Sigma number (`1`) matches neither; JSON `false`, null or a missing field never match `true`.
Known difference, kept out of the compared events: the backend's `field=1` half also takes the JSON
number 1 and the string "1" for `true`; the engine does not. Other known differences: SQLite compares
numbers in a TEXT column as text and folds case for ASCII only.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaDetection, SigmaRule

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.connectors.model.logsources import profile_of
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.engine.analysis import field_names
from kubesigma.detections.engine.fields import resolve, split_path
from kubesigma.detections.engine.ir import KEYWORD

_SELECT = "SELECT * FROM logs"


def flatten(doc: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """One event as one row: dotted column names, lists as JSON text, booleans as `true`/`false`."""
    out = {} if out is None else out
    for key, value in doc.items():
        name = prefix + key
        c = value.__class__
        if c is dict:
            flatten(value, name + ".", out)
        elif c is list:
            out[name] = orjson.dumps(value).decode()
        elif c is bool:
            out[name] = "true" if value else "false"
        else:
            out[name] = value
    return out


def _rule_files(paths: Iterable[Path | str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.rglob("*.yml")) if p.is_dir() else [p])
    return files


def detection_fields(rule: SigmaRule) -> set[str]:
    out: set[str] = set()

    def walk(item: Any) -> None:
        if isinstance(item, SigmaDetection):
            for sub in item.detection_items:
                walk(sub)
        elif getattr(item, "field", None):
            out.add(item.field)

    for detection in rule.detection.detections.values():
        walk(detection)
    return out


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


class SQLiteOracle:
    """The rules converted once (not timed by the bench: Zircolite ships converted rule sets); each run
    builds the table from the events and runs every query on it."""

    def __init__(
        self, paths: Iterable[Path | str], pipeline: Callable[[], ProcessingPipeline] | None = None
    ) -> None:
        self.queries: list[tuple[str, str]] = []  # (rule id, query selecting the matching rowids)
        self.refused: list[str] = []  # rules the backend cannot express (keyword search)
        self.fields: set[str] = set()  # columns the queries name, after the pipeline
        for path in _rule_files(paths):
            count = len(SigmaCollection.load_ruleset([path]).rules)
            for i in range(count):
                # Pipelines mutate rules: a freshly parsed rule and a fresh backend per conversion.
                rule = SigmaCollection.load_ruleset([path]).rules[i]
                if not isinstance(rule, SigmaRule):
                    continue  # correlation rules: no single-event query
                backend = sqliteBackend(pipeline() if pipeline else None, collate_nocase=True)
                try:
                    converted = backend.convert(SigmaCollection([rule]))
                except SigmaError as err:
                    self.refused.append(f"{path.name}: {rule.title} ({err})")
                    continue
                for query in converted:
                    if not query.startswith(_SELECT):
                        raise ValueError(f"unexpected query shape for {rule.title}: {query[:80]}")
                    self.queries.append((str(rule.id), "SELECT rowid FROM logs" + query[len(_SELECT) :]))
                self.fields |= detection_fields(rule)

    @property
    def rule_ids(self) -> set[str]:
        return {rule_id for rule_id, _ in self.queries}

    def _table(self, docs: Sequence[dict[str, Any]]) -> sqlite3.Connection:
        rows = [flatten(d) for d in docs]
        columns = dict.fromkeys(c for row in rows for c in row)
        # Fields a rule names but no event carries still need a column, or the query fails to prepare.
        columns.update(dict.fromkeys(f for f in sorted(self.fields) if f not in columns))
        names = list(columns) or ["_"]
        db = sqlite3.connect(":memory:")
        db.create_function("REGEXP", 2, _regexp)
        db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in names) + ")")
        quoted = "".join(f', "{c}"' for c in names)
        db.executemany(
            f"INSERT INTO logs (rowid{quoted}) VALUES (?{', ?' * len(names)})",
            ([i, *(row.get(c) for c in names)] for i, row in enumerate(rows, start=1)),
        )
        return db

    def _run(self, db: sqlite3.Connection, query: str) -> sqlite3.Cursor:
        while True:
            try:
                return db.execute(query)
            except sqlite3.OperationalError as e:  # a field the pipeline introduced: an empty column
                missing = re.match(r"no such column: (.+)$", str(e))
                if not missing:
                    raise
                db.execute(f'ALTER TABLE logs ADD COLUMN "{missing.group(1).strip("`")}" TEXT COLLATE NOCASE')

    def matches(self, docs: Sequence[dict[str, Any]]) -> set[tuple[str, int]]:
        """(rule id, index of the event in `docs`) for every match."""
        db = self._table(docs)
        found = {(rule_id, rowid - 1) for rule_id, query in self.queries for (rowid,) in self._run(db, query)}
        db.close()
        return found

    def hits(self, docs: Sequence[dict[str, Any]]) -> Counter[str]:
        """Matching events per rule id: one `SELECT COUNT(*)` per query, as Zircolite counts."""
        db = self._table(docs)
        out: Counter[str] = Counter()
        for rule_id, query in self.queries:
            (count,) = self._run(db, f"SELECT COUNT(*) FROM ({query})").fetchone()
            out[rule_id] += count
        db.close()
        return out


def comparable(fields: set[str], doc: dict[str, Any]) -> bool:
    """No field of the rule runs through a list or stops on an object in this event."""
    for f in fields:
        x = resolve(doc, split_path(f))
        if x.__class__ is tuple or x.__class__ is dict:
            return False
    return True


class EngineVsSQLite:
    """kubesigma's RuleSet and the oracle on the same rules, compared where SQL can say the same."""

    def __init__(
        self,
        paths: Sequence[Path | str],
        pipeline: Callable[[], ProcessingPipeline] | None = None,
        engine: RuleSet | None = None,
    ) -> None:
        self.engine = engine or RuleSet.load(list(paths))
        self.oracle = SQLiteOracle(paths, pipeline)
        self.fields = {c.info.id: field_names(c.ir) - {KEYWORD} for c in self.engine._compiled}

    def compare(
        self, docs: Sequence[dict[str, Any]]
    ) -> tuple[set[tuple[str, int]], set[tuple[str, int]], int]:
        """The engine's and the oracle's (rule id, event index) matches on comparable pairs, and how many
        pairs were comparable."""
        keep = {
            (rid, i)
            for rid in self.oracle.rule_ids
            for i, d in enumerate(docs)
            if comparable(self.fields[rid], d)
        }
        mine = {
            (r.id, i) for i, d in enumerate(docs) for r in self.engine.match_document(KUBERNETES_AUDIT, d)
        }
        # The engine checks a request's outcome once per event, not in each rule's condition (where
        # SQL would see it): the same check on the oracle's matches.
        success_only = {r.id for r in self.engine.rules if r.success_only}
        succeeded = profile_of(KUBERNETES_AUDIT).succeeded
        theirs = {(r, i) for r, i in self.oracle.matches(docs) if r not in success_only or succeeded(docs[i])}
        return mine & keep, theirs & keep, len(keep)
