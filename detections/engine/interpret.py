"""The reference interpreter: a rule's IR evaluated on one document by walking the tree, node by node.

Plain on purpose, with none of the compiled engine's machinery (no dispatch, folding, memo, guards or
shared lookups): it is the compiled engine's oracle in the differential tests, and `trace` keeps the
value of every node, which is what explaining why a rule did or did not match an event rests on.
`fires` adds what the engine checks once per event rather than in each rule: the request's outcome;
`verdict` is the same decision with its trace (`detections/explain.py` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesigma.connectors.model import RuleInfo
from kubesigma.connectors.model.logsources import profile_of
from kubesigma.detections.engine.fields import MISSING, all_strings, resolve, split_path
from kubesigma.detections.engine.ir import KEYWORD, And, Fold, Node, Not, Or
from kubesigma.detections.engine.modifiers import Leaf


class _Document:
    """One document as leaves read it: field values, and for keywords all its strings (once)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._strings: list[str] | None = None

    def leaf(self, leaf: Leaf) -> bool:
        if leaf.field == KEYWORD:
            # A keyword leaf's predicate tests one string: the leaf holds when some string passes.
            if self._strings is None:
                self._strings = all_strings(self.doc)
            return any(leaf.pred(t) for t in self._strings)
        x = resolve(self.doc, split_path(leaf.field))  # type: ignore[arg-type]
        other = resolve(self.doc, split_path(leaf.other_field)) if leaf.other_field else MISSING
        return leaf.evaluate(x, other)


class _Truth(Fold[bool]):
    def __init__(self, doc: dict[str, Any]) -> None:
        self.document = _Document(doc)

    def const(self, value: bool) -> bool:
        return value

    def leaf(self, leaf: Leaf) -> bool:
        return self.document.leaf(leaf)

    def and_(self, node: And, results: list[bool]) -> bool:
        return all(results)

    def or_(self, node: Or, results: list[bool]) -> bool:
        return any(results)

    def not_(self, node: Not, result: bool) -> bool:
        return not result


def evaluate(node: Node, doc: dict[str, Any]) -> bool:
    """Whether the IR is true for the document (every node evaluated: no short cut)."""
    return _Truth(doc).visit(node)


@dataclass(frozen=True)
class Evaluation:
    """A node and its value on one document, with the evaluations of its children."""

    node: Node
    value: bool
    children: tuple[Evaluation, ...] = ()


class _Trace(Fold[Evaluation]):
    def __init__(self, doc: dict[str, Any]) -> None:
        self.document = _Document(doc)

    def const(self, value: bool) -> Evaluation:
        return Evaluation(value, value)

    def leaf(self, leaf: Leaf) -> Evaluation:
        return Evaluation(leaf, self.document.leaf(leaf))

    def and_(self, node: And, results: list[Evaluation]) -> Evaluation:
        return Evaluation(node, all(r.value for r in results), tuple(results))

    def or_(self, node: Or, results: list[Evaluation]) -> Evaluation:
        return Evaluation(node, any(r.value for r in results), tuple(results))

    def not_(self, node: Not, result: Evaluation) -> Evaluation:
        return Evaluation(node, not result.value, (result,))


def trace(node: Node, doc: dict[str, Any]) -> Evaluation:
    """The IR evaluated on the document with the value of every node kept."""
    return _Trace(doc).visit(node)


def _succeeded(info: RuleInfo, doc: dict[str, Any]) -> bool | None:
    """For a rule about something done (`info.success_only`), whether the request succeeded (its
    logsource profile says); None for a rule that does not wait for the outcome."""
    return profile_of(info.logsource).succeeded(doc) if info.success_only else None


def fires(info: RuleInfo, node: Node, doc: dict[str, Any]) -> bool:
    """Whether a rule fires on a document as the engine decides it: its condition holds and, for a rule
    about something done (`info.success_only`), the request succeeded (its logsource profile says)."""
    if not evaluate(node, doc):
        return False
    return _succeeded(info, doc) is not False


@dataclass(frozen=True)
class Verdict:
    """`fires` with its reasons: the condition's trace and the outcome gate (None: no gate)."""

    fires: bool
    condition: Evaluation
    succeeded: bool | None


def verdict(info: RuleInfo, node: Node, doc: dict[str, Any]) -> Verdict:
    """What `fires` decides, with the value of every node of the condition kept (`rules explain`)."""
    condition = trace(node, doc)
    succeeded = _succeeded(info, doc)
    return Verdict(condition.value and succeeded is not False, condition, succeeded)
