"""The engine's intermediate representation of a rule's condition, built from pySigma's condition tree:
`And`, `Or` and `Not` over `Leaf` tests, Python's True and False as constants, walked by `Visitor`.

Constants are Python's own booleans, not a node class: they only ever stand for a whole tree (folding
simplifies them out of every And, Or and Not), `Leaf.evaluate` gives them, and the callers' `is False`
tests stay one identity check. Nodes are never changed after construction: a fold that leaves a
subtree alone returns the same object, and what the analyses learn of a node is cached on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Union

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionIdentifier,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaExpansion

from kubesigma.detections.engine import modifiers as M
from kubesigma.detections.engine.modifiers import Leaf, UnsupportedRule

# The pseudo-field of field-less values (Sigma keywords): all strings and keys of the document.
KEYWORD = "\x00keywords"
CASED = frozenset({"ceq", "cprefix", "csuffix", "ccontains", "cglob", "cany"})


class And:
    """True when every child is."""

    __slots__ = ("children", "fields", "shape")
    op = "and"

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)
        # Facts the analyses compute once per node (`analysis.field_names`, `analysis.shape`).
        self.fields: frozenset[str] | None = None
        self.shape: Any = None

    def __repr__(self) -> str:
        return f"And({', '.join(map(repr, self.children))})"


class Or:
    """True when some child is."""

    __slots__ = ("children", "fields", "shape")
    op = "or"

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)
        self.fields: frozenset[str] | None = None
        self.shape: Any = None

    def __repr__(self) -> str:
        return f"Or({', '.join(map(repr, self.children))})"


class Not:
    """True when its child is false."""

    __slots__ = ("child", "fields", "shape")

    def __init__(self, child: Node) -> None:
        self.child = child
        self.fields: frozenset[str] | None = None
        self.shape: Any = None

    def __repr__(self) -> str:
        return f"Not({self.child!r})"


Node = Union[Leaf, And, Or, Not, bool]  # noqa: UP007  (a runtime alias, not an annotation)
Junction = Union[And, Or]  # noqa: UP007

T = TypeVar("T")


class Visitor(Generic[T]):
    """The one way the engine walks a tree: `visit` calls the method for the node's kind.

    Analyses and the interpreter are `Fold`s (bottom-up). A visitor descends itself where the order
    or the extent of the walk matters: the code writer (the order in which it meets the leaves names
    the generated variables), constant folding (an And stops at its first false child), and analyses
    that learn nothing through a negation (they do not visit below a Not)."""

    def visit(self, node: Node) -> T:
        c = node.__class__
        if c is Leaf:
            return self.leaf(node)  # type: ignore[arg-type]
        if c is And:
            return self.visit_and(node)  # type: ignore[arg-type]
        if c is Or:
            return self.visit_or(node)  # type: ignore[arg-type]
        if c is Not:
            return self.visit_not(node)  # type: ignore[arg-type]
        return self.const(node)  # type: ignore[arg-type]

    def const(self, value: bool) -> T:
        raise NotImplementedError

    def leaf(self, leaf: Leaf) -> T:
        raise NotImplementedError

    def visit_and(self, node: And) -> T:
        raise NotImplementedError

    def visit_or(self, node: Or) -> T:
        raise NotImplementedError

    def visit_not(self, node: Not) -> T:
        raise NotImplementedError


class Fold(Visitor[T]):
    """Bottom-up: a node's result from its children's results (given with the node, so a fold that
    rebuilds the tree can hand back the node itself when no child changed)."""

    def visit_and(self, node: And) -> T:
        return self.and_(node, [self.visit(c) for c in node.children])

    def visit_or(self, node: Or) -> T:
        return self.or_(node, [self.visit(c) for c in node.children])

    def visit_not(self, node: Not) -> T:
        return self.not_(node, self.visit(node.child))

    def and_(self, node: And, results: list[T]) -> T:
        raise NotImplementedError

    def or_(self, node: Or, results: list[T]) -> T:
        raise NotImplementedError

    def not_(self, node: Not, result: T) -> T:
        raise NotImplementedError


class _Leaves(Fold[list[Leaf]]):
    def const(self, value: bool) -> list[Leaf]:
        return []

    def leaf(self, leaf: Leaf) -> list[Leaf]:
        return [leaf]

    def and_(self, node: And, results: list[list[Leaf]]) -> list[Leaf]:
        return [leaf for r in results for leaf in r]

    or_ = and_  # type: ignore[assignment]

    def not_(self, node: Not, result: list[Leaf]) -> list[Leaf]:
        return result


_LEAVES = _Leaves()


def leaves(node: Node) -> list[Leaf]:
    """The node's leaves, left to right."""
    return _LEAVES.visit(node)


# ---------------------------------------------------------------------------------------------
# pySigma's condition tree → IR


@dataclass(frozen=True)
class Origin:
    """Where an IR node comes from in its rule: the named detection (a selection, a filter) and, for a
    leaf, the detection item as the processing pipeline left it (mapped field, expanded values) with
    its position among the detection's items, one index per nesting level (transformations replace an
    item in place, so the position is the written item's). What `rules explain` reads a trace by."""

    detection: str
    item: SigmaDetectionItem | None = None
    position: tuple[int, ...] = ()


Origins = dict[int, Origin]  # id() of an IR node → its origin (the tree keeps its nodes alive)


class _OriginIndex:
    """A rule's detection items by the identity of their values: pySigma builds each value expression
    from the item's own value object, while the parent links it leaves on the condition tree are
    rewired by each enclosing AND and OR (they lead to the naming identifier, not to the item)."""

    def __init__(self, rule: SigmaRule, out: Origins) -> None:
        self.out = out
        self.by_value: dict[int, Origin] = {}
        for name, detection in rule.detection.detections.items():
            self._index(name, detection, ())

    def _index(self, name: str, detection: SigmaDetection, at: tuple[int, ...]) -> None:
        for i, item in enumerate(detection.detection_items):
            if isinstance(item, SigmaDetection):
                self._index(name, item, (*at, i))
            else:
                for value in item.value:
                    self.by_value[id(value)] = Origin(name, item, (*at, i))

    def note(self, node: Any, out: Node) -> None:
        origin = self.by_value.get(id(getattr(node, "value", None)))
        if origin is None:
            parent = getattr(node, "parent", None)
            while parent is not None and not isinstance(parent, ConditionIdentifier):
                parent = getattr(parent, "parent", None)
            if parent is None:
                return  # an operator of the condition itself
            origin = Origin(parent.identifier)
        self.out[id(out)] = origin
        if isinstance(out, Or) and origin.item is not None:  # an expansion's values
            for child in out.children:
                self.out[id(child)] = origin


def to_ir(node: Any, origins: _OriginIndex | None = None) -> Node:
    """pySigma's postprocessed condition tree as IR (with `origins`, each node's origin noted)."""
    if node is None:
        raise UnsupportedRule("the condition selects no detection item")
    if isinstance(node, ConditionAND):
        out: Node = And([to_ir(a, origins) for a in node.args])
    elif isinstance(node, ConditionOR):
        out = Or([to_ir(a, origins) for a in node.args])
    elif isinstance(node, ConditionNOT):
        out = Not(to_ir(node.args[0], origins))
    elif isinstance(node, ConditionFieldEqualsValueExpression):
        if isinstance(node.value, SigmaExpansion):
            out = Or([M.build_leaf(node.field, v) for v in node.value.values])
        else:
            out = M.build_leaf(node.field, node.value)
    elif isinstance(node, ConditionValueExpression):
        if isinstance(node.value, SigmaExpansion):
            out = Or([keyword_leaf(M.build_leaf(None, v)) for v in node.value.values])
        else:
            out = keyword_leaf(M.build_leaf(None, node.value))
    else:
        raise UnsupportedRule(f"condition element {type(node).__name__} is not supported")
    if origins is not None:
        origins.note(node, out)
    return out


def rule_ir(rule: SigmaRule, origins: Origins | None = None) -> Node:
    """One rule's detection as IR (several conditions are OR-ed, as the specification says); with
    `origins`, where each node comes from (`Origin`) is noted there."""
    index = _OriginIndex(rule, origins) if origins is not None else None
    trees = [to_ir(c.parsed, index) for c in rule.detection.parsed_condition]
    return trees[0] if len(trees) == 1 else Or(trees)


def keyword_leaf(leaf: Leaf) -> Leaf:
    """A field-less value as a keyword: it matches as a substring of any string value or key of
    the document. The leaf's `pred` tests one string (what the interpreter walks)."""
    kind = leaf.kind
    cased = kind in CASED
    base = kind[1:] if cased else kind
    if base in ("eq", "prefix", "suffix", "contains"):
        value = leaf.value
        if cased:
            return Leaf(KEYWORD, "kwc", value, lambda t: value in t)
        return Leaf(KEYWORD, "kw", value, lambda t: value in t.lower())
    if base == "any":
        return Leaf(KEYWORD, "kwany", None, lambda t: True)
    if base == "glob":
        # contains semantics: search instead of fullmatch
        rx = leaf.value
        pattern = rx.pattern
        inner = pattern[4:] if pattern.startswith("(?s)") else pattern
        srx = M.compile_re2("(?s)" + inner, "keyword pattern")
        conv = M.scalar_str if cased else M.lower_str

        def pred(v: Any) -> bool:
            t = conv(v)
            return t is not None and srx.search(t) is not None

        joined = _nul_free(inner)
        if joined is None:
            return Leaf(KEYWORD, "kwpred", None, pred)
        # One search over all strings joined by NUL, with wildcards that cannot cross a NUL, instead
        # of one search per string (a pod spec holds dozens).
        jrx = M.compile_re2("(?s)" + joined, "keyword pattern")
        return Leaf(KEYWORD, "kwcglob" if cased else "kwglob", jrx, pred)
    if kind == "re":
        return Leaf(KEYWORD, "kwpred", None, leaf.pred)
    raise UnsupportedRule(f"keyword of kind {kind} is not supported")


def _nul_free(pattern: str) -> str | None:
    """A wildcard pattern (escaped text, `.` and `.*`) whose wildcards do not match NUL; None when
    its text holds a NUL itself."""
    if "\x00" in pattern:
        return None
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append("[^\\x00]" if ch == "." else ch)
        i += 1
    return "".join(out)
