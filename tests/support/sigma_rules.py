"""Helpers for the engine tests: Sigma rules written as YAML files into a temporary folder.

Every answer `matches` and `Matcher` give is the compiled engine's, checked against the reference
interpreter's (`interpret.evaluate`): each semantics test is also a differential test."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import yaml

from kubesigma.connectors.model import KUBERNETES_AUDIT, LogSource
from kubesigma.detections.config import EngineConfig
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.engine.interpret import fires

_counter = itertools.count()


def rule_doc(
    detection: dict[str, Any], product: str = "kubernetes", service: str = "audit", **meta: Any
) -> dict[str, Any]:
    n = next(_counter)
    doc: dict[str, Any] = {
        "title": meta.pop("title", f"test rule {n}"),
        "id": meta.pop("id", str(uuid.UUID(int=n + 1))),
        "status": "test",
        "logsource": {"product": product, "service": service, **meta.pop("logsource", {})},
        "detection": detection,
        "level": meta.pop("level", "medium"),
    }
    doc.update(meta)
    return doc


def write_rules(folder: Path, *docs: dict[str, Any] | str, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        path = folder / (name or f"rule_{next(_counter)}.yml")
        path.write_text(text, encoding="utf-8")
    return folder


def ruleset(tmp_path: Path, *docs: dict[str, Any] | str, config: EngineConfig | None = None) -> RuleSet:
    """A RuleSet of exactly these rules (each call uses a fresh folder)."""
    return RuleSet.load([write_rules(tmp_path / f"rules{next(_counter)}", *docs)], config)


def checked_match(rs: RuleSet, logsource: LogSource, doc: dict[str, Any]) -> bool:
    """Whether some rule matches the document, asserting the interpreter agrees with the engine."""
    compiled = bool(rs.match_document(logsource, doc))
    product, service = logsource.product.lower(), logsource.service.lower()
    interpreted = isinstance(doc, dict) and any(
        fires(c.info, c.ir, doc)
        for c in rs._compiled
        if (c.info.logsource.product, c.info.logsource.service) == (product, service)
    )
    assert compiled == interpreted, (compiled, doc)
    return compiled


def matches(
    detection: dict[str, Any], doc: dict[str, Any], tmp_path: Path, logsource: LogSource = KUBERNETES_AUDIT
) -> bool:
    """Does one rule with this detection match this document?"""
    rs = ruleset(tmp_path, rule_doc(detection))
    return checked_match(rs, logsource, doc)


class Matcher:
    """One compiled rule, reused across many documents (for property tests)."""

    def __init__(self, tmp_path: Path, detection: dict[str, Any]):
        folder = tmp_path / f"m{next(_counter)}"
        self.rs = RuleSet.load([write_rules(folder, rule_doc(detection))])

    def __call__(self, doc: dict[str, Any]) -> bool:
        return checked_match(self.rs, KUBERNETES_AUDIT, doc)


def compile_rule(detection: dict[str, Any], config: EngineConfig | None = None, **meta: Any) -> Matcher:
    """One rule compiled from memory (no files), for property tests that build many rules."""
    m = Matcher.__new__(Matcher)
    m.rs = RuleSet.from_yaml([yaml.safe_dump(rule_doc(detection, **meta), sort_keys=False)], config)
    return m
