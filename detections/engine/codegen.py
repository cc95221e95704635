"""IR → Python source: a group of rules becomes one function over a document, compiled once.

Each field the group reads is resolved and lowercased once (the prologue), then every rule's condition
is an inline boolean expression (`in` chains for contains lists, tuple startswith/endswith, frozenset
membership for value lists). Rules reading only low-cardinality fields are memoized on their values;
rules needing one of many substrings of a field wait behind one guard test; rules needing an object
the event may not carry (`requestObject`) wait behind one test that it is there. The logsource's
profile says which fields are low-cardinality and which make poor guards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubesigma.connectors.model.logsources import LogSourceProfile
from kubesigma.detections.engine import fields as F
from kubesigma.detections.engine import modifiers as M
from kubesigma.detections.engine.analysis import field_names, gram_cover, needs_some, required_root, witness
from kubesigma.detections.engine.ir import CASED, KEYWORD, And, Node, Not, Or, Visitor
from kubesigma.detections.engine.modifiers import Leaf, UnsupportedRule
from kubesigma.detections.engine.runtime import RUNTIME

MEMO_LIMIT = 4096  # remembered value combinations per function; past it, evaluate without storing
GUARD_MIN_NEEDLES = 4  # below this many substrings a guard saves nothing

# A rule as code generation takes it: its payload (what the function returns when it is true) and IR.
Rules = Sequence[tuple[Any, Node]]
Numbered = list[tuple[int, Node]]  # rules by their position in the function's rule list


@dataclass
class Prologue:
    """Where a block's field lookups go, written after all code (`_Codegen.render`): later code may
    still add needs to a field. `resolve`: look the fields up; `derive`: compute what tests read."""

    fields: set[int]
    indent: str
    resolve: bool
    derive: bool


class _Codegen(Visitor[str]):
    """Writes one function's code: the expression of each condition (`visit`) while it registers the
    fields they read and what of each value (lowered text, number, ...), then the prologues that
    compute those once per event."""

    def __init__(self, prefix: str = "C") -> None:
        self.prefix = prefix
        self.consts: dict[str, Any] = {}
        self._const_ids: dict[int, str] = {}
        self.fields: dict[str, int] = {}
        self.needs: dict[int, set[str]] = {}
        self.keyword_needs: set[str] = set()
        self._blocks = 0  # prologues written: names their lookup variables apart

    def bind(self, value: Any) -> str:
        """The name under which generated code reads `value` (one per object)."""
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
                return f"m{i} and not {self.bind(frozenset(values))}.isdisjoint(L{i})"
            if kind == "any":
                return f"m{i} and bool(L{i})"
            helper = {"prefix": "_ANYSW", "suffix": "_ANYEW", "contains": "_ANYIN"}[kind]
            return f"m{i} and {helper}(L{i}, {tuple(values)!r})"
        return f"m{i} and _A({self.bind(pred)}, x{i})"

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
        v = f"s{i}" if k in CASED or k == "re" else f"l{i}"
        if k in ("cidr",):
            return f"_IPIN(x{i}, {self.bind(leaf.value)})"
        if k in ("num", "cmp", "neqnum"):
            self.needs[i].add("n")
            op = {"num": "==", "neqnum": "!="}.get(k) or leaf.extra["op"]
            return f"(n{i} is not None and n{i} {op} {leaf.value!r})"
        if k == "tpart":
            self.needs[i].add("t")
            return f"(t{i} is not None and {leaf.extra['expr'].format(t=f't{i}')} == {leaf.value!r})"
        self.needs[i].add(v[0])
        base = k[1:] if k in CASED else k
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
            return f"({v} is not None and {self.bind(leaf.value)}.fullmatch({v}) is not None)"
        if k == "re":
            return f"({v} is not None and {self.bind(leaf.value)}.search({v}) is not None)"
        raise UnsupportedRule(f"no code for leaf kind {k}")

    def merged(self, group: list[Leaf]) -> str:
        """Several leaves of one field and kind under an OR, as one test."""
        first = group[0]
        k = first.kind
        i = self.field(first.field)
        if k == "cidr":
            nets = tuple(leaf.value for leaf in group)
            return f"(_IPINS(x{i}, {self.bind(nets)}) or {self._multi(i, lambda v: M.ip_in_any(v, nets))})"
        cased = k in CASED
        v = f"s{i}" if cased else f"l{i}"
        self.needs[i].add(v[0])
        base = k[1:] if cased else k
        values = [leaf.value for leaf in group]
        if base == "eq":
            inline = f"{v} in {self.bind(frozenset(values))}"
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
            return f"{self.bind(leaf.value)}.search({'_K' if k == 'kwglob' else '_KC'}) is not None"
        self.keyword_needs.add("KL")
        return f"_A({self.bind(leaf.pred)}, _KL)"

    # -- trees ------------------------------------------------------------------------------

    def const(self, value: bool) -> str:
        return "True" if value else "False"

    def visit_not(self, node: Not) -> str:
        return f"(not {self.visit(node.child)})"

    def visit_and(self, node: And) -> str:
        return "(" + " and ".join([self.visit(c) for c in node.children]) + ")"

    def visit_or(self, node: Or) -> str:
        # Leaves of one field and kind merge into one test (set membership, tuple startswith, ...).
        groups: dict[tuple[str, str], list[Leaf]] = {}
        rest: list[Node] = []
        for c in node.children:
            if c.__class__ is Leaf and c.mergeable and c.field is not None and c.field != KEYWORD:
                groups.setdefault((c.field, c.kind), []).append(c)
            else:
                rest.append(c)
        parts = [self.merged(group) if len(group) > 1 else self.leaf(group[0]) for group in groups.values()]
        parts.extend(self.visit(c) for c in rest)
        return "(" + " or ".join(parts) + ")"

    def deferred_prologue(
        self, fields: set[int], indent: str, resolve: bool = True, derive: bool = True
    ) -> Prologue:
        """A prologue for these fields, written once all code is (later code may add needs)."""
        return Prologue(set(fields), indent, resolve, derive)

    def render(self, line: str | Prologue) -> str:
        """A line as written, or the prologue it stands for."""
        if isinstance(line, str):
            return line
        lines = self.prologue(
            only=line.fields, indent=line.indent, keywords=False, resolve=line.resolve, derive=line.derive
        )
        return "\n".join(lines) or f"{line.indent}pass"

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


def _cse_body(gen: _Codegen, rules: Sequence[tuple[int, Node]], indent: str, emit: str) -> list[str]:
    """`if <cond>: <emit P>` per rule; conditions shared by several rules are computed once."""
    conds = [gen.visit(ir) for _, ir in rules]
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


def _guard_groups(
    gen: _Codegen, rules: Numbered, unselective: frozenset[str]
) -> tuple[Numbered, list[tuple[str, Numbered]]]:
    """Split rules into plain ones and groups behind one substring guard (the test registers its fields)."""
    plain: Numbered = []
    groups: dict[tuple[str, ...], list[tuple[int, Node, dict[str, frozenset[str]]]]] = {}
    for n, ir in rules:
        w = witness(ir, unselective)
        if w is None:
            plain.append((n, ir))
        else:
            groups.setdefault(tuple(sorted(w)), []).append((n, ir, w))
    guarded: list[tuple[str, Numbered]] = []
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
    plain.sort(key=lambda rule: rule[0])
    return plain, guarded


def _emit_guarded(
    gen: _Codegen, guarded: list[tuple[str, Numbered]], indent: str, resolved: set[int]
) -> list[str | Prologue]:
    """Each guard and its rules; fields only these rules read are resolved inside the guard."""
    out: list[str | Prologue] = []
    for test, members in guarded:
        code = _cse_body(gen, members, indent + "    ", "r.append(P{n})")
        used = {gen.fields[f] for _, ir in members for f in field_names(ir) if f in gen.fields} - resolved
        out.append(f"{indent}if {test}:")
        out.append(gen.deferred_prologue(used, indent + "    "))
        out += code
    return out


def _memoized(gen: _Codegen, memo: Numbered, extra_defs: list[str], consts: dict[str, Any]) -> list[str]:
    """The rules reading only low-cardinality fields as `MEMOFN` over those fields' values, and the
    lines that look its answer up per combination of values (computing it on a miss)."""
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
    return [
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


def _rooted(
    gen: _Codegen, root: str, members: Numbered, eager: set[int], unselective: frozenset[str]
) -> list[str | Prologue]:
    """Rules that need a top-level object the event may not carry (requestObject on Metadata-level
    events), behind one test that it is there; their fields are resolved only then."""
    lines: list[str | Prologue] = []
    before = set(gen.fields.values())
    plain, guarded = _guard_groups(gen, members, unselective)
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
    return lines


def generate(rules: Rules, profile: LogSourceProfile, name: str = "match") -> tuple[str, dict[str, Any]]:
    """Source and namespace of `match(doc) -> list` returning the payload of every true rule."""
    live: Numbered = [(n, ir) for n, (_, ir) in enumerate(rules) if ir is not False]
    consts: dict[str, Any] = {f"P{n}": payload for n, (payload, ir) in enumerate(rules) if ir is not False}

    memo: Numbered = []
    rest: Numbered = []
    for n, ir in live:
        names = field_names(ir)
        (memo if names and names <= profile.low_cardinality else rest).append((n, ir))
    if len(memo) < 2:
        rest = live
        memo = []

    gen = _Codegen()
    lines: list[str | Prologue] = []
    extra_defs: list[str] = []
    if memo:
        lines += _memoized(gen, memo, extra_defs, consts)
    else:
        lines.append("    r = []")

    eager: set[int] = set(gen.fields.values())  # memo key fields
    top: Numbered = []
    rooted: dict[str, Numbered] = {}
    for n, ir in rest:
        root = required_root(ir)
        (rooted.setdefault(root, []) if root else top).append((n, ir))

    # Top level: plain rules and substring guard tests read their fields up front.
    plain, guarded = _guard_groups(gen, top, profile.unselective)
    lines += _cse_body(gen, plain, "    ", "r.append(P{n})")
    eager |= set(gen.fields.values())
    lines += _emit_guarded(gen, guarded, "    ", eager)
    if rooted:
        lines.append("    _dt = None  # top-level dotted keys, looked for only when a root key is missing")
    for root, members in rooted.items():
        lines += _rooted(gen, root, members, eager, profile.unselective)

    # Prologues are written last: later code may still add needs (lowered lists, numbers) to a field.
    main = gen.prologue(only=eager)
    body = [f"def {name}(doc):", *main, *(gen.render(line) for line in lines), "    return r"]
    source = "\n".join(extra_defs) + "\n" + "\n".join(body) + "\n"
    namespace = dict(RUNTIME)
    namespace.update(consts)
    namespace.update(gen.consts)
    return source, namespace


def build(
    rules: Rules, profile: LogSourceProfile, name: str = "match"
) -> Callable[[dict[str, Any]], list[Any]]:
    source, namespace = generate(rules, profile, name)
    code = compile(source, f"<kubesigma rules: {len(rules)}>", "exec")
    exec(code, namespace)
    return namespace[name]
