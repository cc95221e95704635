"""What the engine learns of a rule's IR before writing code for it: the fields it reads, the values a
field must take, its constant folding on known values, and the tests that can stand guard for it.

Every analysis is a `Visitor` of the tree, most of them `Fold`s. Facts asked again and again of the
same tree (its fields, its shape) are cached on each node: folding hands back unchanged subtrees as
the same objects, so a folded tree computes them only for its new nodes.
"""

from __future__ import annotations

from typing import Any

from kubesigma.detections.engine.fields import MISSING
from kubesigma.detections.engine.ir import KEYWORD, And, Fold, Node, Not, Or, Visitor
from kubesigma.detections.engine.modifiers import Leaf

_NO_FIELDS: frozenset[str] = frozenset()


class _FieldNames(Visitor[frozenset[str]]):
    """Bottom-up, and cached on every node on the way: a folded tree shares its unchanged subtrees."""

    def const(self, value: bool) -> frozenset[str]:
        return _NO_FIELDS

    def leaf(self, leaf: Leaf) -> frozenset[str]:
        return leaf.reads

    def visit_and(self, node: And | Or) -> frozenset[str]:
        names = node.fields
        if names is None:
            names = node.fields = frozenset().union(*[self.visit(c) for c in node.children])
        return names

    visit_or = visit_and

    def visit_not(self, node: Not) -> frozenset[str]:
        names = node.fields
        if names is None:
            names = node.fields = self.visit(node.child)
        return names


_FIELD_NAMES = _FieldNames()


def field_names(node: Node) -> frozenset[str]:
    """The fields the IR reads (KEYWORD for field-less values)."""
    c = node.__class__
    if c is Leaf:
        return node.reads  # type: ignore[union-attr]
    if c is bool:
        return _NO_FIELDS
    names = node.fields  # type: ignore[union-attr]
    return _FIELD_NAMES.visit(node) if names is None else names


class _Shape(Visitor[Any]):
    """Bottom-up, cached on every node on the way like the field names."""

    def const(self, value: bool) -> Any:
        return value

    def leaf(self, leaf: Leaf) -> Any:
        return id(leaf)

    def visit_and(self, node: And | Or) -> Any:
        found = node.shape
        if found is None:
            found = node.shape = (node.op, tuple([self.visit(c) for c in node.children]))
        return found

    visit_or = visit_and

    def visit_not(self, node: Not) -> Any:
        found = node.shape
        if found is None:
            found = node.shape = ("not", self.visit(node.child))
        return found


_SHAPE = _Shape()


def shape(node: Node) -> Any:
    """A hashable fingerprint of a (folded) IR: equal fingerprints, equal code (leaves by identity)."""
    c = node.__class__
    if c is bool:
        return node
    if c is Leaf:
        return id(node)
    found = node.shape  # type: ignore[union-attr]
    return _SHAPE.visit(node) if found is None else found


class _Fold(Visitor[Node]):
    """Leaves over known fields replaced by their value on the known values, then simplified.

    A visitor that descends itself: an And stops at its first false child, an Or at its first true one."""

    def __init__(self, known: dict[str, Any]) -> None:
        self.known = known

    def const(self, value: bool) -> Node:
        return value

    def leaf(self, leaf: Leaf) -> Node:
        known = self.known
        if leaf.field in known and (leaf.other_field is None or leaf.other_field in known):
            other = known.get(leaf.other_field, MISSING) if leaf.other_field else MISSING
            return leaf.evaluate(known[leaf.field], other)
        return leaf

    def visit_and(self, node: And) -> Node:
        return self._junction(node, False)

    def visit_or(self, node: Or) -> Node:
        return self._junction(node, True)

    def visit_not(self, node: Not) -> Node:
        child = self.visit(node.child)
        if child is node.child:
            return node
        return (not child) if child.__class__ is bool else Not(child)

    def _junction(self, node: And | Or, absorbing: bool) -> Node:
        """An And (absorbed by False) or Or (absorbed by True) over its folded children."""
        children = []
        changed = False
        for child in node.children:
            folded = self.visit(child)
            if folded is not child:
                changed = True
            if folded.__class__ is bool:
                if folded is absorbing:
                    return absorbing
                continue
            children.append(folded)
        if not changed:
            return node
        if not children:
            return not absorbing
        if len(children) == 1:
            return children[0]
        return node.__class__(children)


def fold(node: Node, known: dict[str, Any]) -> Node:
    """Replace leaves over fields of known value by constants and simplify.

    The IR comes back as the same object when it reads none of the known fields, and unchanged
    subtrees stay the same objects, so facts cached on them (fields, shape) keep serving."""
    if node is True or node is False or known.keys().isdisjoint(field_names(node)):
        return node
    return _Fold(known).visit(node)


class _NecessaryValues(Fold["frozenset[str] | None"]):
    def __init__(self, fld: str) -> None:
        self.fld = fld

    def const(self, value: bool) -> frozenset[str] | None:
        return None if value else frozenset()

    def leaf(self, leaf: Leaf) -> frozenset[str] | None:
        if leaf.field == self.fld and leaf.kind == "eq":
            return frozenset((leaf.value,))
        return None

    def and_(self, node: And, results: list[frozenset[str] | None]) -> frozenset[str] | None:
        known = [s for s in results if s is not None]
        if not known:
            return None
        out = known[0]
        for s in known[1:]:
            out = out & s
        return out

    def or_(self, node: Or, results: list[frozenset[str] | None]) -> frozenset[str] | None:
        if any(s is None for s in results):
            return None
        return frozenset().union(*results)  # type: ignore[arg-type]

    def visit_not(self, node: Not) -> frozenset[str] | None:
        return None  # nothing is known through a negation: its subtree is not visited


def necessary_values(node: Node, fld: str) -> frozenset[str] | None:
    """Lowercased values `fld` must equal for the IR to be true, or None when unconstrained."""
    return _NecessaryValues(fld).visit(node)


# ---------------------------------------------------------------------------------------------
# What can stand guard for a rule in generated code

_GUARDABLE = frozenset({"eq", "prefix", "suffix", "contains", "ceq", "cprefix", "csuffix", "ccontains"})
Witness = dict[str, frozenset[str]]


class _Witness(Fold["Witness | None"]):
    def __init__(self, unselective: frozenset[str]) -> None:
        self.unselective = unselective

    def const(self, value: bool) -> Witness | None:
        return None

    def leaf(self, leaf: Leaf) -> Witness | None:
        if leaf.field is None or leaf.field == KEYWORD or leaf.kind not in _GUARDABLE:
            return None
        needle = str(leaf.value).lower()
        return {leaf.field: frozenset((needle,))} if needle else None

    def and_(self, node: And, results: list[Witness | None]) -> Witness | None:
        known = [w for w in results if w is not None]
        # A guard on a field that nearly always holds the same value (the decision is almost
        # always "allow") filters nothing; otherwise the fewest substrings guard best.
        unselective = self.unselective
        return (
            min(known, key=lambda w: (any(f in unselective for f in w), sum(len(v) for v in w.values())))
            if known
            else None
        )

    def or_(self, node: Or, results: list[Witness | None]) -> Witness | None:
        if any(w is None for w in results):
            return None
        merged: dict[str, frozenset[str]] = {}
        for w in results:
            for f, needles in w.items():  # type: ignore[union-attr]
                merged[f] = merged.get(f, frozenset()) | needles
        return merged

    def visit_not(self, node: Not) -> Witness | None:
        return None  # nothing is known through a negation: its subtree is not visited


def witness(node: Node, unselective: frozenset[str]) -> Witness | None:
    """Substrings (per field, lowercased) at least one of which must occur for the IR to be true.

    `unselective`: fields whose value is the same for most events (poor guards)."""
    return _Witness(unselective).visit(node)


GRAM = 4  # guard substrings: pieces of this length shared by many needles


def gram_cover(needles: frozenset[str]) -> list[str]:
    """Few short substrings such that every needle contains one of them (greedy set cover).

    If a needle occurs in a text, each of its substrings does too, so "no cover piece occurs"
    proves "no needle occurs": one or two `in` tests stand guard for hundreds of needles.
    """
    grams = {
        n: {n} if len(n) <= GRAM else {n[i : i + GRAM] for i in range(len(n) - GRAM + 1)} for n in needles
    }
    uncovered = set(needles)
    chosen: list[str] = []
    while uncovered:
        counts: dict[str, int] = {}
        for n in uncovered:
            for g in grams[n]:
                counts[g] = counts.get(g, 0) + 1
        best = max(sorted(counts), key=lambda g: counts[g])
        chosen.append(best)
        uncovered = {n for n in uncovered if best not in grams[n]}
    return chosen


def _true_when_absent(leaf: Leaf) -> bool:
    """A leaf that holds on an absent field (null, not exists), or is not about one field."""
    return (
        leaf.field is None
        or leaf.field == KEYWORD
        or leaf.kind == "null"
        or (leaf.kind == "exists" and not leaf.value)
    )


class _RequiredRoot(Fold["str | None"]):
    def const(self, value: bool) -> str | None:
        return None

    def leaf(self, leaf: Leaf) -> str | None:
        if _true_when_absent(leaf) or "." not in leaf.field:  # type: ignore[operator]
            return None
        return leaf.field.split(".", 1)[0]  # type: ignore[union-attr]

    def and_(self, node: And, results: list[str | None]) -> str | None:
        known = [r for r in results if r]
        return known[0] if known else None

    def or_(self, node: Or, results: list[str | None]) -> str | None:
        return results[0] if results and all(r == results[0] for r in results) else None

    def visit_not(self, node: Not) -> str | None:
        return None  # nothing is known through a negation: its subtree is not visited


_REQUIRED_ROOT = _RequiredRoot()


def required_root(node: Node) -> str | None:
    """A top-level object (`requestObject`) without which the IR cannot be true, if any."""
    return _REQUIRED_ROOT.visit(node)


class _NeedsSome(Fold["frozenset[str] | None"]):
    def const(self, value: bool) -> frozenset[str] | None:
        return None if value else frozenset()

    def leaf(self, leaf: Leaf) -> frozenset[str] | None:
        if _true_when_absent(leaf):
            return None
        return frozenset((leaf.field,))  # type: ignore[arg-type]

    def and_(self, node: And, results: list[frozenset[str] | None]) -> frozenset[str] | None:
        known = [f for f in results if f is not None]
        return min(known, key=len) if known else None

    def or_(self, node: Or, results: list[frozenset[str] | None]) -> frozenset[str] | None:
        if any(f is None for f in results):
            return None
        return frozenset().union(*results)  # type: ignore[arg-type]

    def visit_not(self, node: Not) -> frozenset[str] | None:
        return None  # nothing is known through a negation: its subtree is not visited


_NEEDS_SOME = _NeedsSome()


def needs_some(node: Node) -> frozenset[str] | None:
    """Fields of which at least one must be present (not MISSING) for the IR to be true, if known."""
    return _NEEDS_SOME.visit(node)
