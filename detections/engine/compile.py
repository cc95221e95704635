"""Sigma condition trees → a small boolean IR → generated Python, compiled once per rule group.

A group of rules becomes one function over a document: each field the group reads is resolved
and lowercased once, then every rule's condition is an inline boolean expression (`in` chains for
contains lists, tuple startswith/endswith, frozenset membership for value lists). Leaves whose
field value is known in advance (the dispatch key: verb, resource, ...) are folded to constants
first, so rules that cannot match a key vanish from that key's function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import SigmaExpansion

from kubesigma.detections.engine import fields as F
from kubesigma.detections.engine import modifiers as M
from kubesigma.detections.engine.modifiers import Leaf, UnsupportedRule

# IR: Leaf | bool | ("and", [IR]) | ("or", [IR]) | ("not", IR)
IR = Union[Leaf, bool, tuple]  # noqa: UP007  (a runtime alias, not an annotation)

KEYWORD = "\x00keywords"
_CASED = frozenset(
    {"ceq", "cprefix", "csuffix", "ccontains", "cglob", "cany"}
)  # pseudo-field of field-less values: all strings and keys of the document


# ---------------------------------------------------------------------------------------------
# pySigma tree → IR


def _keyword_leaf(leaf: Leaf) -> Leaf:
    """Keywords match as substrings of any string value or key of the document."""
    kind = leaf.kind
    cased = kind in _CASED
    base = kind[1:] if cased else kind
    if base in ("eq", "prefix", "suffix", "contains"):
        return Leaf(KEYWORD, "kwc" if cased else "kw", leaf.value, lambda v: False)
    if base == "any":
        return Leaf(KEYWORD, "kwany", None, lambda v: False)
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


def to_ir(node: Any) -> IR:
    if node is None:
        raise UnsupportedRule("the condition selects no detection item")
    if isinstance(node, ConditionAND):
        return ("and", [to_ir(a) for a in node.args])
    if isinstance(node, ConditionOR):
        return ("or", [to_ir(a) for a in node.args])
    if isinstance(node, ConditionNOT):
        return ("not", to_ir(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if isinstance(node.value, SigmaExpansion):
            return ("or", [M.build_leaf(node.field, v) for v in node.value.values])
        return M.build_leaf(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        if isinstance(node.value, SigmaExpansion):
            return ("or", [_keyword_leaf(M.build_leaf(None, v)) for v in node.value.values])
        return _keyword_leaf(M.build_leaf(None, node.value))
    raise UnsupportedRule(f"condition element {type(node).__name__} is not supported")


def rule_ir(rule: SigmaRule) -> IR:
    """One rule's detection as IR (several conditions are OR-ed, as the specification says)."""
    trees = [to_ir(c.parsed) for c in rule.detection.parsed_condition]
    return trees[0] if len(trees) == 1 else ("or", trees)


def leaves(ir: IR) -> list[Leaf]:
    if isinstance(ir, Leaf):
        return [ir]
    if isinstance(ir, bool):
        return []
    if ir[0] == "not":
        return leaves(ir[1])
    return [leaf for child in ir[1] for leaf in leaves(child)]


def field_names(ir: IR) -> frozenset[str]:
    """The fields the IR reads (cached per IR object: rules are folded again and again)."""
    return _facts(ir)[1]


# IR objects (kept alive here, so their ids stay theirs) → (fields, shape)
_IR_FACTS: dict[int, tuple[Any, frozenset[str], Any]] = {}
_IR_FACTS_LIMIT = 65536


def _facts(ir: IR) -> tuple[Any, frozenset[str], Any]:
    facts = _IR_FACTS.get(id(ir))
    if facts is None or facts[0] is not ir:
        names: set[str] = set()
        for leaf in leaves(ir):
            if leaf.field is not None:
                names.add(leaf.field)
            if leaf.other_field is not None:
                names.add(leaf.other_field)
        if len(_IR_FACTS) >= _IR_FACTS_LIMIT:
            _IR_FACTS.clear()
        facts = _IR_FACTS[id(ir)] = (ir, frozenset(names), _shape(ir))
    return facts


def necessary_values(ir: IR, fld: str) -> frozenset[str] | None:
    """Lowercased values `fld` must equal for the IR to be true, or None when unconstrained."""
    if isinstance(ir, Leaf):
        if ir.field == fld and ir.kind == "eq":
            return frozenset((ir.value,))
        return None
    if isinstance(ir, bool):
        return None if ir else frozenset()
    op = ir[0]
    if op == "not":
        return None
    sets = [necessary_values(c, fld) for c in ir[1]]
    if op == "and":
        known = [s for s in sets if s is not None]
        if not known:
            return None
        out = known[0]
        for s in known[1:]:
            out = out & s
        return out
    if any(s is None for s in sets):
        return None
    return frozenset().union(*sets)  # type: ignore[arg-type]


def fold(ir: IR, known: dict[str, Any]) -> IR:
    """Replace leaves over fields of known value by constants and simplify.

    The IR comes back as the same object when it reads none of the known fields, and unchanged
    subtrees stay the same objects, so facts cached per IR (fields, shape) keep serving."""
    if ir is True or ir is False or known.keys().isdisjoint(field_names(ir)):
        return ir
    return _fold(ir, known)


def _fold(ir: IR, known: dict[str, Any]) -> IR:
    if isinstance(ir, bool):
        return ir
    if isinstance(ir, Leaf):
        if ir.field in known and (ir.other_field is None or ir.other_field in known):
            return ir.evaluate(
                known[ir.field], known.get(ir.other_field, F.MISSING) if ir.other_field else F.MISSING
            )
        return ir
    op = ir[0]
    if op == "not":
        child = _fold(ir[1], known)
        if child is ir[1]:
            return ir
        return (not child) if isinstance(child, bool) else ("not", child)
    children = []
    changed = False
    absorbing = op == "or"  # True absorbs an OR, False absorbs an AND
    for c in ir[1]:
        fc = _fold(c, known)
        if fc is not c:
            changed = True
        if isinstance(fc, bool):
            if fc is absorbing:
                return absorbing
            continue
        children.append(fc)
    if not changed:
        return ir
    if not children:
        return not absorbing
    if len(children) == 1:
        return children[0]
    return (op, children)


# ---------------------------------------------------------------------------------------------
# IR → Python source


class _Codegen:
    def __init__(self, prefix: str = "C") -> None:
        self.prefix = prefix
        self.consts: dict[str, Any] = {}
        self._const_ids: dict[int, str] = {}
        self.fields: dict[str, int] = {}
        self.needs: dict[int, set[str]] = {}
        self.keyword_needs: set[str] = set()
        self._deferred: list[tuple[set[int], str, bool, bool]] = []
        self._blocks = 0  # prologues written: names their lookup variables apart

    def const(self, value: Any) -> str:
        key = id(value)
        name = self._const_ids.get(key)
        if name is None:
            name = f"{self.prefix}{len(self.consts)}"
            self.consts[name] = value
            self._const_ids[key] = name
        return name

    def field(self, path: str | None, need: str = "") -> int:
        if path is None:  # only keyword leaves have no field, and they never get here
            raise ValueError("a field test without a field")
        i = self.fields.setdefault(path, len(self.fields))
        s = self.needs.setdefault(i, set())
        if need:
            s.add(need)
        return i

    # -- leaves -----------------------------------------------------------------------------

    def _multi(self, i: int, pred: Callable[[Any], bool], kind: str = "", values: Any = None) -> str:
        """The test when the field holds several values (lists were traversed)."""
        self.needs[i].add("m")
        if kind in ("eq", "prefix", "suffix", "contains", "any") and values is not None:
            if kind == "contains" and not any("\x00" in v for v in values):
                # one `in` per needle over the lowered values joined by NUL, which no needle holds
                self.needs[i].add("J")
                return f"m{i} and ({' or '.join(f'{v!r} in J{i}' for v in values)})"
            # on the lowered strings of the values, computed once per field
            self.needs[i].add("L")
            if kind == "eq":
                return f"m{i} and not {self.const(frozenset(values))}.isdisjoint(L{i})"
            if kind == "any":
                return f"m{i} and bool(L{i})"
            helper = {"prefix": "_ANYSW", "suffix": "_ANYEW", "contains": "_ANYIN"}[kind]
            return f"m{i} and {helper}(L{i}, {tuple(values)!r})"
        return f"m{i} and _A({self.const(pred)}, x{i})"

    def leaf(self, leaf: Leaf) -> str:
        k = leaf.kind
        if leaf.field == KEYWORD:
            return self.keyword(leaf)
        i = self.field(leaf.field)
        if k == "null":
            return f"_NULL(x{i})"
        if k == "exists":
            self.needs[i].add("e")
            return f"e{i}" if leaf.value else f"(not e{i})"
        if k == "fieldref":
            j = self.field(leaf.other_field)
            return f"_FREF(x{i}, x{j}, {leaf.value!r})"
        inline = self._inline(leaf, i)
        if k in ("eq", "prefix", "suffix", "contains", "any"):
            return f"({inline} or {self._multi(i, leaf.pred, k, () if k == 'any' else (leaf.value,))})"
        return f"({inline} or {self._multi(i, leaf.pred)})"

    def _inline(self, leaf: Leaf, i: int) -> str:
        k = leaf.kind
        v = f"s{i}" if k in _CASED or k == "re" else f"l{i}"
        if k in ("cidr",):
            return f"_IPIN(x{i}, {self.const(leaf.value)})"
        if k in ("num", "cmp", "neqnum"):
            self.needs[i].add("n")
            op = {"num": "==", "neqnum": "!="}.get(k) or leaf.extra["op"]
            return f"(n{i} is not None and n{i} {op} {leaf.value!r})"
        if k == "tpart":
            self.needs[i].add("t")
            return f"(t{i} is not None and {leaf.extra['expr'].format(t=f't{i}')} == {leaf.value!r})"
        self.needs[i].add(v[0])
        base = k[1:] if k in _CASED else k
        if base == "eq":
            return f"{v} == {leaf.value!r}"
        if base == "any":
            return f"{v} is not None"
        if base == "prefix":
            return f"({v} is not None and {v}.startswith({leaf.value!r}))"
        if base == "suffix":
            return f"({v} is not None and {v}.endswith({leaf.value!r}))"
        if base == "contains":
            return f"({v} is not None and {leaf.value!r} in {v})"
        if base == "glob":
            return f"({v} is not None and {self.const(leaf.value)}.fullmatch({v}) is not None)"
        if k == "re":
            return f"({v} is not None and {self.const(leaf.value)}.search({v}) is not None)"
        raise UnsupportedRule(f"no code for leaf kind {k}")

    def merged(self, group: list[Leaf]) -> str:
        """Several leaves of one field and kind under an OR, as one test."""
        first = group[0]
        k = first.kind
        i = self.field(first.field)
        if k == "cidr":
            nets = tuple(leaf.value for leaf in group)
            return f"(_IPINS(x{i}, {self.const(nets)}) or {self._multi(i, lambda v: M.ip_in_any(v, nets))})"
        cased = k in _CASED
        v = f"s{i}" if cased else f"l{i}"
        self.needs[i].add(v[0])
        base = k[1:] if cased else k
        values = [leaf.value for leaf in group]
        if base == "eq":
            inline = f"{v} in {self.const(frozenset(values))}"
        elif base == "prefix":
            inline = f"({v} is not None and {v}.startswith({tuple(values)!r}))"
        elif base == "suffix":
            inline = f"({v} is not None and {v}.endswith({tuple(values)!r}))"
        else:
            chain = " or ".join(f"{val!r} in {v}" for val in values)
            inline = f"({v} is not None and ({chain}))"
        preds = [leaf.pred for leaf in group]
        if not cased:
            return f"({inline} or {self._multi(i, lambda x: any(p(x) for p in preds), base, values)})"
        return f"({inline} or {self._multi(i, lambda x: any(p(x) for p in preds))})"

    def keyword(self, leaf: Leaf) -> str:
        k = leaf.kind
        if k == "kw":
            self.keyword_needs.add("K")
            return f"{leaf.value!r} in _K"
        if k == "kwc":
            self.keyword_needs.add("KC")
            return f"{leaf.value!r} in _KC"
        if k == "kwany":
            self.keyword_needs.add("KL")
            return "bool(_KL)"
        if k in ("kwglob", "kwcglob"):
            self.keyword_needs.add("K" if k == "kwglob" else "KC")
            return f"{self.const(leaf.value)}.search({'_K' if k == 'kwglob' else '_KC'}) is not None"
        self.keyword_needs.add("KL")
        return f"_A({self.const(leaf.pred)}, _KL)"

    # -- trees ------------------------------------------------------------------------------

    def expr(self, ir: IR) -> str:
        if ir is True:
            return "True"
        if ir is False:
            return "False"
        if isinstance(ir, Leaf):
            return self.leaf(ir)
        op = ir[0]
        if op == "not":
            return f"(not {self.expr(ir[1])})"
        parts: list[str] = []
        if op == "or":
            groups: dict[tuple[str, str], list[Leaf]] = {}
            rest: list[IR] = []
            for c in ir[1]:
                if isinstance(c, Leaf) and c.mergeable and c.field is not None and c.field != KEYWORD:
                    groups.setdefault((c.field, c.kind), []).append(c)
                else:
                    rest.append(c)
            for group in groups.values():
                parts.append(self.merged(group) if len(group) > 1 else self.leaf(group[0]))
            parts.extend(self.expr(c) for c in rest)
        else:
            parts = [self.expr(c) for c in ir[1]]
        return "(" + f" {op} ".join(parts) + ")"

    def deferred_prologue(
        self, fields: set[int], indent: str, resolve: bool = True, derive: bool = True
    ) -> str:
        self._deferred.append((set(fields), indent, resolve, derive))
        return f"\x00prologue {len(self._deferred) - 1}"

    def fill_prologue(self, line: str) -> str:
        if not line.startswith("\x00prologue "):
            return line
        fields, indent, resolve, derive = self._deferred[int(line.split()[1])]
        lines = self.prologue(only=fields, indent=indent, keywords=False, resolve=resolve, derive=derive)
        return "\n".join(lines) or f"{indent}pass"

    def prologue(
        self,
        from_args: bool = False,
        only: set[int] | None = None,
        indent: str = "    ",
        keywords: bool = True,
        resolve: bool = True,
        derive: bool = True,
    ) -> list[str]:
        """Lines computing the fields' values (x) and what the tests read of them (l, s, n, ...).

        Fields under one object (requestObject.spec.containers.*) share their plain-key lookups
        (`fields.inline_source`), and a missing object ends every path below it at once."""
        lines: list[str] = []
        chosen = [(path, i) for path, i in self.fields.items() if only is None or i in only]
        if not from_args and chosen and resolve:
            self._blocks += 1
            lookups, bindings = F.inline_source(
                [F.split_path(p) for p, _ in chosen],
                [f"x{i}" for _, i in chosen],
                f"_b{self._blocks}",
                indent,
            )
            self.consts.update(bindings)
            lines += lookups
        for _path, i in chosen if derive else ():
            needs = self.needs.get(i, set())
            # One branch per class of value: absent, text, the values a list gave (a tuple, often
            # empty: a pod whose containers run no command), another JSON value. Helpers are
            # called only for the values that need them; constants of one value share a line.
            branches = []
            for case, test in _VALUE_CLASSES:
                assigned: dict[str, list[str]] = {}
                for need in _NEED_ORDER:
                    if need in needs:
                        template = _DERIVE["J_from_L" if need == "J" and "L" in needs else need][case]
                        expr = template.format(x=f"x{i}", L=f"L{i}")
                        assigned.setdefault(expr, []).append(f"{need}{i}")
                body = [
                    f"{indent}    {' = '.join(names)} = {expr}"
                    if expr in _CONSTANTS
                    else "\n".join(f"{indent}    {name} = {expr}" for name in names)
                    for expr, names in assigned.items()
                ]
                branches.append((test.format(x=f"x{i}"), body))
            if not branches[0][1]:
                continue
            for test, body in branches:
                lines.append(indent + test)
                lines += body
        if self.keyword_needs and keywords:
            lines.append("    _KL = _ALLSTR(doc)")
            if "K" in self.keyword_needs:
                lines.append("    _K = '\\x00'.join(_KL).lower()")
            if "KC" in self.keyword_needs:
                lines.append("    _KC = '\\x00'.join(_KL)")
        return lines


# What a test reads of a field's value (`needs`), per class of value: absent (MISSING), text, the
# tuple of values that lists gave, any other JSON value. `x` is the value, `L` its lowered values.
_VALUE_CLASSES = (
    ("absent", "if {x} is MISSING:"),
    ("text", "elif {x}.__class__ is str:"),
    ("values", "elif {x}.__class__ is tuple:"),
    ("other", "else:"),
)
_NEED_ORDER = "lsntmLJe"  # L before J: the joined text may reuse the lowered values
_DERIVE: dict[str, dict[str, str]] = {
    "l": {"absent": "None", "text": "{x}.lower()", "values": "None", "other": "_LS({x})"},
    "s": {"absent": "None", "text": "{x}", "values": "None", "other": "_SS({x})"},
    "n": {"absent": "None", "text": "_NUM({x})", "values": "None", "other": "_NUM({x})"},
    "t": {"absent": "None", "text": "_TS({x})", "values": "_TS({x})", "other": "_TS({x})"},
    "m": {"absent": "False", "text": "False", "values": "True", "other": "False"},
    "L": {"absent": "()", "text": "()", "values": "_LSEQ({x}) if {x} else ()", "other": "()"},
    "J": {"absent": "''", "text": "''", "values": "_JLOW({x}) if {x} else ''", "other": "''"},
    "J_from_L": {"absent": "''", "text": "''", "values": "'\\x00'.join({L}) if {x} else ''", "other": "''"},
    "e": {"absent": "False", "text": "True", "values": "_EXISTS({x})", "other": "_EXISTS({x})"},
}
_CONSTANTS = frozenset({"None", "False", "True", "()", "''"})


def _dotted_top(doc: dict[str, Any]) -> tuple[str, ...]:
    """Top-level keys holding a dot (a field path may start inside one); usually none."""
    return tuple(k for k in doc if "." in k) if "." in "".join(doc) else ()


def _has_root(dotted: tuple[str, ...], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in dotted)


def _lowered_values(x: tuple[Any, ...]) -> list[str]:
    out = []
    for v in x:
        t = M.lower_str(v)
        if t is not None:
            out.append(t)
    return out


_ONLY_STRINGS = frozenset({str}).issuperset


def _joined_lower(x: tuple[Any, ...]) -> str:
    """The lowered text of a field's values joined by NUL (what `contains` searches on a list).

    Lowering the joined text equals joining the lowered values: NUL is neither cased nor
    case-ignorable, so no casing context crosses it."""
    if _ONLY_STRINGS(map(type, x)):
        return "\x00".join(x).lower()
    return "\x00".join(_lowered_values(x))


def _any_startswith(values: list[str], prefixes: tuple[str, ...]) -> bool:
    return any(v.startswith(prefixes) for v in values)


def _any_endswith(values: list[str], suffixes: tuple[str, ...]) -> bool:
    return any(v.endswith(suffixes) for v in values)


def _any_contains(values: list[str], needles: tuple[str, ...]) -> bool:
    return any(n in v for v in values for n in needles)


_UNHASHABLE: list[Any] = []


def _memo_key(v: Any) -> Any:
    """Memo key part of a non-string value; lists and objects are unhashable (evaluated directly)."""
    c = v.__class__
    if c is int or c is float or c is bool or v is None or v is F.MISSING:
        return (c, v)
    return _UNHASHABLE


_RUNTIME = {
    "_MK": _memo_key,
    "_NODOTS": F.no_dotted_keys,
    "_LSEQ": _lowered_values,
    "_JLOW": _joined_lower,
    "_ANYSW": _any_startswith,
    "_ANYEW": _any_endswith,
    "_ANYIN": _any_contains,
    "_DOTTED_TOP": _dotted_top,
    "_HAS_ROOT": _has_root,
    "MISSING": F.MISSING,
    "_resolve": F.resolve,
    "_make_resolver": F.cached_resolver,  # resolvers hold no state: one per path
    "_flatten": F._flatten,
    "_LV": F.list_values,
    "_ALLSTR": F.all_strings,
    "_LS": M.lower_str,
    "_SS": M.scalar_str,
    "_NUM": M.number,
    "_TS": M.timestamp,
    "_EXISTS": M.exists,
    "_NULL": M.is_null,
    "_A": M.any_of,
    "_IPIN": M.ip_in,
    "_IPINS": M.ip_in_any,
    "_FREF": M.field_ref,
}


# Fields with few distinct values in real audit traffic: rules reading only these are evaluated
# once per distinct combination of values and remembered (per dispatch key).
LOW_CARDINALITY = frozenset(
    {
        "verb",
        "objectRef.resource",
        "objectRef.subresource",
        "objectRef.namespace",
        "objectRef.apiGroup",
        "objectRef.apiVersion",
        "user.username",
        "userAgent",
        "responseStatus.code",
        "stage",
        "level",
        "annotations.authorization.k8s.io/decision",
        "kind",
        "apiVersion",
        "eventSource",
        "eventName",
        "awsRegion",
        "errorCode",
        "userIdentity.type",
        "userIdentity.arn",
        "protoPayload.methodName",
        "protoPayload.serviceName",
        "protoPayload.status.code",
        "protoPayload.authenticationInfo.principalEmail",
        "resource.type",
        "logName",
    }
)
# Fields on which a dispatch bucket specializes its rules (second-level key): low-cardinality
# fields plus the few that take a bounded set of values per identity in real traffic (a node's or
# a controller's groups and source addresses do not change). Rules whose leaves over these fields
# are all false for an event's values are never evaluated for it.
SPECIALIZE_ON = LOW_CARDINALITY | frozenset(
    {
        "user.groups",
        "impersonatedUser.username",
        "impersonatedUser.groups",
        "sourceIPs",
    }
)
# Fields a bucket keys on first: the identities most single-event rules are about.
SPECIALIZE_FIRST = (
    "user.username",
    "userAgent",
    "user.groups",
    "impersonatedUser.username",
    "impersonatedUser.groups",
    "sourceIPs",
    "protoPayload.authenticationInfo.principalEmail",
    "userIdentity.arn",
    "userIdentity.type",
)
# Who is acting: a bucket's first level keys on all of these its rules read.
IDENTITY_FIELDS = frozenset(
    {
        "user.username",
        "user.groups",
        "impersonatedUser.username",
        "impersonatedUser.groups",
        "sourceIPs",
        "userAgent",
    }
)
# Fields whose value is the same for most events: poor guards.
UNSELECTIVE = frozenset(
    {
        "annotations.authorization.k8s.io/decision",
        "stage",
        "level",
        "kind",
        "apiVersion",
        "objectRef.apiVersion",
        "responseStatus.code",
        "eventVersion",
        "eventType",
        "protoPayload.serviceName",
        "resource.type",
        "logName",
    }
)
MEMO_LIMIT = 4096  # remembered value combinations per function; past it, evaluate without storing
GUARD_MIN_NEEDLES = 4  # below this many substrings a guard saves nothing
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


def witness(ir: IR) -> dict[str, frozenset[str]] | None:
    """Substrings (per field, lowercased) at least one of which must occur for the IR to be true."""
    if isinstance(ir, Leaf):
        if (
            ir.field is None
            or ir.field == KEYWORD
            or ir.kind
            not in (
                "eq",
                "prefix",
                "suffix",
                "contains",
                "ceq",
                "cprefix",
                "csuffix",
                "ccontains",
            )
        ):
            return None
        needle = str(ir.value).lower()
        return {ir.field: frozenset((needle,))} if needle else None
    if isinstance(ir, bool):
        return None
    op = ir[0]
    if op == "not":
        return None
    found = [witness(c) for c in ir[1]]
    if op == "and":
        known = [w for w in found if w is not None]
        # A guard on a field that nearly always holds the same value (the decision is almost
        # always "allow") filters nothing; otherwise the fewest substrings guard best.
        return (
            min(known, key=lambda w: (any(f in UNSELECTIVE for f in w), sum(len(v) for v in w.values())))
            if known
            else None
        )
    if any(w is None for w in found):
        return None
    merged: dict[str, frozenset[str]] = {}
    for w in found:
        for f, needles in w.items():  # type: ignore[union-attr]
            merged[f] = merged.get(f, frozenset()) | needles
    return merged


def _cse_body(gen: _Codegen, rules: Sequence[tuple[int, IR]], indent: str, emit: str) -> list[str]:
    """`if <cond>: <emit P>` per rule; conditions shared by several rules are computed once."""
    conds = [gen.expr(ir) for _, ir in rules]
    counts: dict[str, int] = {}
    for c in conds:
        counts[c] = counts.get(c, 0) + 1
    names: dict[str, str] = {}
    out = []
    for (n, _), cond in zip(rules, conds, strict=True):
        if counts[cond] > 1:
            if cond not in names:
                names[cond] = f"q{len(names)}"
                out.append(f"{indent}{names[cond]} = {cond}")
            cond = names[cond]
        out.append(f"{indent}if {cond}:\n{indent}    {emit.format(n=n)}")
    return out


def required_root(ir: IR) -> str | None:
    """A top-level object (`requestObject`) without which the IR cannot be true, if any."""
    if isinstance(ir, Leaf):
        if ir.field is None or ir.field == KEYWORD or "." not in ir.field:
            return None
        if ir.kind == "null" or (ir.kind == "exists" and not ir.value):
            return None  # true on absent fields
        return ir.field.split(".", 1)[0]
    if isinstance(ir, bool):
        return None
    op = ir[0]
    if op == "not":
        return None
    roots = [required_root(c) for c in ir[1]]
    if op == "and":
        known = [r for r in roots if r]
        return known[0] if known else None
    return roots[0] if roots and all(r == roots[0] for r in roots) else None


def needs_some(ir: IR) -> frozenset[str] | None:
    """Fields of which at least one must be present (not MISSING) for the IR to be true, if known."""
    if ir is True:
        return None
    if ir is False:
        return frozenset()
    if isinstance(ir, Leaf):
        if (
            ir.field is None
            or ir.field == KEYWORD
            or ir.kind == "null"
            or (ir.kind == "exists" and not ir.value)
        ):
            return None  # true on absent fields, or not about one field
        return frozenset((ir.field,))
    op = ir[0]
    if op == "not":
        return None
    found = [needs_some(c) for c in ir[1]]
    if op == "and":
        known = [f for f in found if f is not None]
        return min(known, key=len) if known else None
    if any(f is None for f in found):
        return None
    return frozenset().union(*found)  # type: ignore[arg-type]


def _guard_groups(
    gen: _Codegen, rules: list[tuple[int, IR]]
) -> tuple[list[tuple[int, IR]], list[tuple[str, list[tuple[int, IR]]]]]:
    """Split rules into plain ones and groups behind one substring guard (the test registers its fields)."""
    plain: list[tuple[int, IR]] = []
    groups: dict[tuple[str, ...], list[tuple[int, IR, dict[str, frozenset[str]]]]] = {}
    for n, ir in rules:
        w = witness(ir)
        if w is None:
            plain.append((n, ir))
        else:
            groups.setdefault(tuple(sorted(w)), []).append((n, ir, w))
    guarded: list[tuple[str, list[tuple[int, IR]]]] = []
    for fields_key, members in groups.items():
        needles = {f: frozenset().union(*(w[f] for _, _, w in members)) for f in fields_key}
        covers = {f: gram_cover(ns) for f, ns in needles.items()}
        total = sum(len(v) for v in needles.values())
        if total < GUARD_MIN_NEEDLES or sum(len(c) for c in covers.values()) * 2 > total:
            plain.extend((n, ir) for n, ir, _ in members)
            continue
        tests = []
        for f, pieces in covers.items():
            i = gen.field(f, "l")
            gen.needs[i].add("m")
            chain = " or ".join(f"{p!r} in l{i}" for p in pieces)
            if any("\x00" in p for p in pieces):
                tests.append(f"m{i} or (l{i} is not None and ({chain}))")
            else:  # list fields too: their lowered values joined by NUL
                gen.needs[i].add("J")
                joined = " or ".join(f"{p!r} in J{i}" for p in pieces)
                tests.append(f"(l{i} is not None and ({chain})) or (m{i} and ({joined}))")
        guarded.append((" or ".join(tests), [(n, ir) for n, ir, _ in members]))
    plain.sort()
    return plain, guarded


def _emit_guarded(
    gen: _Codegen, guarded: list[tuple[str, list[tuple[int, IR]]]], indent: str, resolved: set[int]
) -> list[str]:
    """Each guard and its rules; fields only these rules read are resolved inside the guard."""
    out: list[str] = []
    for test, members in guarded:
        code = _cse_body(gen, members, indent + "    ", "r.append(P{n})")
        used = {gen.fields[f] for _, ir in members for f in field_names(ir) if f in gen.fields} - resolved
        out.append(f"{indent}if {test}:")
        out.append(gen.deferred_prologue(used, indent + "    "))
        out += code
    return out


def generate(rules: Sequence[tuple[Any, IR]], name: str = "match") -> tuple[str, dict[str, Any]]:
    """Source and namespace of `match(doc) -> list` returning the payload of every true rule.

    Rules reading only low-cardinality fields are memoized on those fields' values; rules that
    need one of many substrings of a field sit behind one RE2 search for all of them.
    """
    live = [(n, ir) for n, (_, ir) in enumerate(rules) if ir is not False]
    consts: dict[str, Any] = {f"P{n}": payload for n, (payload, ir) in enumerate(rules) if ir is not False}

    memo: list[tuple[int, Any]] = []
    rest: list[tuple[int, Any]] = []
    for n, ir in live:
        names = field_names(ir)
        (memo if names and names <= LOW_CARDINALITY else rest).append((n, ir))
    if len(memo) < 2:
        rest = live
        memo = []

    gen = _Codegen()
    lines: list[str] = []
    extra_defs: list[str] = []
    if memo:
        mgen = _Codegen(prefix="D")
        mfields = sorted({f for _, ir in memo for f in field_names(ir)})
        for f in mfields:
            mgen.field(f)
        mbody = _cse_body(mgen, memo, "    ", "h.append(P{n})")
        args = ", ".join(f"x{mgen.fields[f]}" for f in mfields)
        extra_defs.append(
            "\n".join(
                [
                    f"def MEMOFN({args}):",
                    *mgen.prologue(from_args=True),
                    "    h = []",
                    *mbody,
                    "    return tuple(h)",
                ]
            )
        )
        consts.update(mgen.consts)
        consts["MEMO"] = {}
        xs = [f"x{gen.field(f)}" for f in mfields]
        # str values key themselves; others carry their type (1, 1.0 and True hash alike)
        key = "(" + "".join(f"{x} if {x}.__class__ is str else _MK({x}), " for x in xs) + ")"
        lines += [
            f"    k = {key}",
            "    try:",
            "        h = MEMO[k]",
            "    except KeyError:",
            f"        h = MEMOFN({', '.join(xs)})",
            f"        if len(MEMO) < {MEMO_LIMIT}:",
            "            MEMO[k] = h",
            "    except TypeError:  # an unhashable value (list, object): evaluate directly",
            f"        h = MEMOFN({', '.join(xs)})",
            "    r = list(h)",
        ]
    else:
        lines.append("    r = []")

    eager: set[int] = set(gen.fields.values())  # memo key fields
    top: list[tuple[int, Any]] = []
    rooted: dict[str, list[tuple[int, Any]]] = {}
    for n, ir in rest:
        root = required_root(ir)
        (rooted.setdefault(root, []) if root else top).append((n, ir))

    # Top level: plain rules and substring guard tests read their fields up front.
    plain, guarded = _guard_groups(gen, top)
    lines += _cse_body(gen, plain, "    ", "r.append(P{n})")
    eager |= set(gen.fields.values())
    lines += _emit_guarded(gen, guarded, "    ", eager)
    # Rules that need an object the event may not carry (requestObject on Metadata-level events)
    # wait behind one test that it is there, and resolve their fields only then.
    if rooted:
        lines.append("    _dt = None  # top-level dotted keys, looked for only when a root key is missing")
    for root, members in rooted.items():
        before = set(gen.fields.values())
        plain, guarded = _guard_groups(gen, members)
        # When every rule here is false unless one of a few fields is present (a pod spec's
        # containers, volumes ...), those are resolved first and the rest waits for one of them:
        # requestObjects of other shapes (bindings, status patches) skip the block after a lookup.
        presence = [needs_some(ir) for _, ir in members]
        present: set[str] | None = set().union(*presence) if all(p is not None for p in presence) else None  # type: ignore[arg-type]
        inner = "            " if present else "        "
        code = _cse_body(gen, plain, inner, "r.append(P{n})")
        block_fields = {gen.fields[f] for _, ir in plain for f in field_names(ir) if f in gen.fields}
        block_fields |= set(gen.fields.values()) - before  # guard test fields registered just now
        block_fields -= eager
        lines.append(
            f"    if {root!r} in doc or ((_dt := _DOTTED_TOP(doc) if _dt is None else _dt)"
            f" and _HAS_ROOT(_dt, {root + '.'!r})):"
        )
        if present:
            pidx = {gen.field(f) for f in present}
            block_fields |= pidx - eager
            lines.append(gen.deferred_prologue(block_fields, "        ", derive=False))
            lines.append("        if " + " or ".join(f"x{i} is not MISSING" for i in sorted(pidx)) + ":")
            lines.append(gen.deferred_prologue(block_fields, inner, resolve=False))
        else:
            lines.append(gen.deferred_prologue(block_fields, inner))
        lines += code
        lines += _emit_guarded(gen, guarded, inner, eager | block_fields)

    # Prologues are written last: later code may still add needs (lowered lists, numbers) to a field.
    main = gen.prologue(only=eager)
    lines = [gen.fill_prologue(line) for line in lines]
    body = [f"def {name}(doc):", *main, *lines, "    return r"]
    source = "\n".join(extra_defs) + "\n" + "\n".join(body) + "\n"
    namespace = dict(_RUNTIME)
    namespace.update(consts)
    namespace.update(gen.consts)
    return source, namespace


def build(rules: Sequence[tuple[Any, IR]], name: str = "match") -> Callable[[dict[str, Any]], list[Any]]:
    source, namespace = generate(rules, name)
    code = compile(source, f"<kubesigma rules: {len(rules)}>", "exec")
    exec(code, namespace)
    return namespace[name]


def dispatcher(
    paths: Sequence[str], buckets: dict[Any, Any], make_bucket: Callable[[Any], Any]
) -> Callable[[dict[str, Any]], list[Any]]:
    """`match(doc)` of a logsource: the dispatch key read inline, then its bucket's function
    (`make_bucket(key)` on first sight; `buckets` remembers it under `dispatch_key(key)`).

    As in `level_function`, the values as read are looked up directly: stored keys hold only
    strings, MISSING and UNKNOWN, so any other value misses and `make_bucket` canonicalizes it."""
    inline, bindings = F.inline_source(
        [F.split_path(p) for p in paths], [f"v{i}" for i in range(len(paths))], "K", raw_lists=True
    )
    key = "(" + "".join(f"v{i}, " for i in range(len(paths))) + ")"
    body = [
        "def match(doc):",
        *inline,
        "    try:",
        f"        fn = BUCKETS.get({key})",
        "    except TypeError:  # an object or nested list: unhashable, never stored",
        "        fn = None",
        "    if fn is None:",
        f"        fn = MAKE_BUCKET({key})",
        "    return fn(doc)",
    ]
    namespace = dict(_RUNTIME)
    namespace.update(bindings)
    namespace.update({"BUCKETS": buckets, "MAKE_BUCKET": make_bucket})
    exec(compile("\n".join(body) + "\n", "<kubesigma dispatch>", "exec"), namespace)
    return namespace["match"]


def dispatch_key(values: Sequence[Any]) -> tuple[Any, ...]:
    """A dispatch key as buckets store it: strings and MISSING as they are, anything else UNKNOWN."""
    return tuple(v if v.__class__ is str or v is F.MISSING else UNKNOWN for v in values)


def shape(ir: IR) -> Any:
    """A hashable fingerprint of a (folded) IR: equal fingerprints, equal code (leaves by identity)."""
    if ir is True or ir is False:
        return ir
    return _facts(ir)[2]


def _shape(ir: IR) -> Any:
    if ir is True or ir is False:
        return ir
    if isinstance(ir, Leaf):
        return id(ir)
    if ir[0] == "not":
        return ("not", _shape(ir[1]))
    return (ir[0], tuple(_shape(c) for c in ir[1]))


def specialize_fields(irs: Sequence[IR]) -> frozenset[str]:
    """The low-cardinality fields these rules read: what a dispatch bucket specializes on."""
    names: set[str] = set()
    for ir in irs:
        names |= field_names(ir)
    return frozenset(names & SPECIALIZE_ON)


def specialize_rank(path: str) -> tuple[int, str]:
    """Order in which a bucket keys on its fields: identities first (they decide most rules)."""
    try:
        return (SPECIALIZE_FIRST.index(path), path)
    except ValueError:
        return (len(SPECIALIZE_FIRST), path)


_TYPED = (int, float, bool, type(None))


def _key_value(v: Any) -> Any:
    """A resolved value as part of a specialization key (strings and MISSING key themselves).

    Numbers, booleans and null carry their type (1, 1.0 and True hash alike but match differently);
    a tuple keys itself when it holds only strings; anything else is UNKNOWN: not folded. A typed
    value stays as it is (JSON gives no type objects), so keys typed inline canonicalize to themselves."""
    c = v.__class__
    if c is str or v is F.MISSING:
        return v
    if c is tuple:
        if len(v) == 2 and v[0] in _TYPED:  # typed inline (an object typed inline is UNKNOWN)
            return UNKNOWN if v[0] is float and _same_key_other_text(v[1]) else v
        for e in v:
            if e.__class__ is not str:
                return UNKNOWN
        return v
    if c is float and _same_key_other_text(v):
        return UNKNOWN
    if c is int or c is float or c is bool or v is None:
        return (c, v)
    return UNKNOWN


def _same_key_other_text(v: float) -> bool:
    """-0.0 keys like 0.0 but reads "-0.0"; NaN equals no key, not even its own: neither is folded."""
    return v == 0 or v != v


def canonical_key(key: Any, fields: int) -> Any:
    """A level's key as its table stores it: every value through `_key_value` (one field: the value)."""
    if fields == 1:
        return _key_value(key)
    return tuple(_key_value(v) for v in key)


def level_function(
    paths: Sequence[str],
    table: dict[Any, Any],
    specialize: Callable[[Any, dict[str, Any]], Any],
    numeric: frozenset[str] = frozenset(),
) -> Callable[[dict[str, Any]], list[Any]]:
    """`match(doc)` of one specialization level: read its fields, call the function made for
    their values (`specialize(key, doc)` on first sight; the table remembers it). The key is the
    value for one field, the tuple of values for several.

    The table holds canonical keys only (`canonical_key`: strings, MISSING, tuples of strings,
    typed scalars, UNKNOWN), so values are looked up as read: one that is not its own canonical
    form (a number, a list holding one, an object) equals no stored key (JSON gives no type
    objects, no UNKNOWN), misses, and `specialize` canonicalizes it. No per-element type test on
    the way of the usual event (a fifth of a level's cost). `numeric` fields are typed inline."""
    inline, bindings = F.inline_source(
        [F.split_path(p) for p in paths], [f"v{i}" for i in range(len(paths))], "K", raw_lists=True
    )
    key = "v0" if len(paths) == 1 else "(" + "".join(f"v{i}, " for i in range(len(paths))) + ")"
    # Fields the rules compare as numbers (status codes) usually hold numbers: their values take
    # the typed form here rather than on a miss, as every event would.
    typed = [
        f"    if v{i}.__class__ is not str and v{i} is not MISSING and v{i}.__class__ is not tuple:"
        f" v{i} = (v{i}.__class__, v{i})"  # _key_value's form; an object in it is unhashable
        for i, path in enumerate(paths)
        if path in numeric
    ]
    body = [
        "def match(doc):",
        *inline,
        *typed,
        "    try:",
        f"        fn = TABLE.get({key})",
        "    except TypeError:  # an object or nested list: unhashable, never stored",
        "        fn = None",
        "    if fn is None:",
        f"        fn = SPECIALIZE({key}, doc)",
        "    return fn(doc)",
    ]
    namespace = dict(_RUNTIME)
    namespace.update(bindings)
    namespace.update({"TABLE": table, "SPECIALIZE": specialize})
    exec(compile("\n".join(body) + "\n", f"<kubesigma level {', '.join(paths)}>", "exec"), namespace)
    return namespace["match"]


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
