"""Field paths in decoded JSON documents, resolved the way Sigma rules address them.

`a.b.c` walks objects and lists (any element of a list is a candidate). At each level the plain
key (`a`) is taken when the object has it; otherwise the longest dotted key that exists (`a.b.c`,
then `a.b`), so `annotations.authorization.k8s.io/decision` reaches the annotation whose key itself
holds dots and a slash. Plain-first keeps a path of n parts at n lookups (longest-first would cost
n²/2 per path, the dominant cost on pod specs); the two differ only for an object holding both
`a` and `a.b` keys, which no Kubernetes, GCP or CloudTrail object does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import compress, repeat
from operator import is_
from typing import Any


class _Missing:
    """The field is absent (distinct from a JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# Past this length a list is first sorted out by the types it holds (one C pass), not element by element.
LONG_LIST = 32
_CONTAINERS = frozenset({dict, list})


def _index(items: list[Any], value: Any, start: int) -> int:
    """Where `value` next occurs in items from `start`, -1 if nowhere."""
    try:
        return items.index(value, start)
    except ValueError:
        return -1


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def candidates(parts: tuple[str, ...], i: int) -> list[tuple[str, int]]:
    """Keys to try at level i, in order: the plain key, then dotted joins longest first."""
    n = len(parts)
    return [(parts[i], i + 1)] + [(".".join(parts[i:j]), j) for j in range(n, i + 1, -1)]


def resolve(doc: Any, parts: tuple[str, ...]) -> Any:
    """The value at `parts`: MISSING, a single JSON value, or a tuple when lists were traversed.

    A tuple (possibly empty) means "these values"; a rule matches if any of them matches.
    """
    return cached_resolver(parts)(doc)


def _flatten(items: list[Any], kinds: list[type] | None = None) -> list[Any]:
    """The items with nested lists flattened, in order; `kinds`: their types, if the caller has them."""
    out: list[Any] = []
    if len(items) > LONG_LIST:  # the runs between nested lists copied whole, found at C speed
        if kinds is None:
            kinds = list(map(type, items))
        start = 0
        while (i := _index(kinds, list, start)) >= 0:
            out.extend(items[start:i])
            out.extend(_flatten(items[i]))
            start = i + 1
        out.extend(items[start:])
        return out
    for item in items:
        if item.__class__ is list:
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


@lru_cache(maxsize=4096)
def cached_resolver(parts: tuple[str, ...], first: int | None = None) -> Any:
    """`make_resolver`, one per path (resolvers hold no state)."""
    return make_resolver(parts, first)


@lru_cache(maxsize=4096)
def cached_collectors(parts: tuple[str, ...]) -> list[Any]:
    return _collectors(parts)


def make_resolver(parts: tuple[str, ...], first: int | None = None) -> Any:
    """`resolve` for one path, with every candidate dotted key joined in advance (no per-event joins).

    With `first`, a list the path ends at gives the values of its first `first` items only, for a
    caller that reads no further (a correlation's group-by field): a fuzzed 150,000-item list is
    not flattened whole for the few values it keeps. Rules never resolve so."""
    n = len(parts)
    table = tuple(tuple(candidates(parts, i)) for i in range(n))
    collect = cached_collectors(parts)

    def resolver(doc: Any) -> Any:
        node = doc
        i = 0
        while i < n:
            if node.__class__ is not dict:
                break
            for key, j in table[i]:
                child = node.get(key, MISSING)
                if child is not MISSING:
                    node = child
                    i = j
                    break
            else:
                return MISSING
        if i == n:
            if node.__class__ is not list:
                return node
            return _values(node if first is None or len(node) <= first else node[:first])
        if node.__class__ is list:
            out: list[Any] = []
            collect[i](node, out)
            return tuple(out)
        return MISSING

    return resolver


def _collectors(parts: tuple[str, ...]) -> list[Any]:
    """Per level i, `C_i(node, out)`: append every value the rest of the path reaches from node,
    through lists (any element) and dotted keys. Generated per path: a list of containers is
    walked by one loop with the key lookups inline, not a call per element and level."""
    n = len(parts)
    src: list[str] = []

    def reach(v: str, j: int, pad: str) -> list[str]:
        """Lines handing value v, found by a key, to level j."""
        if j == n:
            return [f"{pad}if {v}.__class__ is list: C{n}({v}, out)", f"{pad}else: out.append({v})"]
        return [f"{pad}C{j}({v}, out)"]

    for i in range(n):
        src.append(f"def C{i}(node, out):")
        src.append("    c = node.__class__")
        src.append("    if c is dict:")
        src.append(f"        v = node.get({parts[i]!r}, MISSING)")
        src.append("        if v is not MISSING:")
        src += reach("v", i + 1, "            ")
        src.append("            return")
        for key, j in candidates(parts, i)[1:]:
            src.append(f"        v = node.get({key!r}, MISSING)")
            src.append("        if v is not MISSING:")
            src += reach("v", j, "            ")
            src.append("            return")
        src.append("    elif c is list:")
        src.append("        for e in node:")
        src.append("            if e.__class__ is dict:")
        src.append(f"                v = e.get({parts[i]!r}, MISSING)")
        src.append("                if v is not MISSING:")
        src += reach("v", i + 1, "                    ")
        src.append("                    continue")
        if len(candidates(parts, i)) == 1:
            # The last part: no dotted key can stand in for it (an env entry without `value`).
            src.append("                continue")
        else:  # a dotted key may stand in for the missing plain one
            src.append(f"                C{i}(e, out)")
            src.append("                continue")
        # An element that is neither object nor list reaches nothing: a list of 150,000 scalars
        # costs a type test per element, not a call per element and path.
        src.append("            if e.__class__ is list:")
        src.append(f"                C{i}(e, out)")
    src.append(f"def C{n}(node, out):")
    src.append("    if node.__class__ is list:")
    src.append("        for e in node:")
    src.append(f"            if e.__class__ is list: C{n}(e, out)")
    src.append("            else: out.append(e)")
    src.append("    else:")
    src.append("        out.append(node)")
    namespace: dict[str, Any] = {"MISSING": MISSING}
    exec(compile("\n".join(src) + "\n", f"<kubesigma path {'.'.join(parts)}>", "exec"), namespace)
    return [namespace[f"C{i}"] for i in range(n + 1)]


def no_dotted_keys(node: dict[str, Any]) -> bool:
    """No key of the object holds a dot (so no dotted key can stand in for a missing plain one)."""
    try:
        return "." not in "".join(node)
    except TypeError:  # non-string keys: make no claim
        return False


def list_values(v: list[Any]) -> tuple[Any, ...]:
    """A list field's values as a tuple, nested lists flattened (the common flat list: one C pass);
    a long list's once per match (`shared`)."""
    if len(v) > SHARED_MIN:
        return shared(_values, v)
    t = tuple(v)
    return tuple(_flatten(v)) if list in map(type, t) else t


def _values(v: list[Any]) -> tuple[Any, ...]:
    t = tuple(v)
    if len(t) > LONG_LIST:  # the types found once: a fuzzed 150,000 copies of one string count them only
        kinds = list(map(type, t))
        if kinds.count(str) == len(kinds):  # by identity: no comparison for a string's type
            return t
        return tuple(_flatten(v, kinds)) if list in kinds else t
    return tuple(_flatten(v)) if list in map(type, t) else t


def only_strings(items: Sequence[Any]) -> bool:
    """Whether every item of a long sequence is a string. Counting their types finds a string's type by
    identity, with no comparison: about 60% of a `frozenset({str}).issuperset(map(type, items))` pass
    over 150,000 strings. Other types compare slowly: a test for long sequences only."""
    return list(map(type, items)).count(str) == len(items)


# What generated code derives from a long list (its flattened values, their lowered texts, a
# document's strings), kept while one event is matched: the dispatcher, the levels and the rule
# functions each read the fields they test, and a fuzzed 150,000-item list would be flattened and
# lowered by each. Keyed by the identity of the source, held with it (an identity is not reused
# while its object lives); `RuleSet.match` empties it before each event, so
# nothing derived carries over to another event, nor to a list changed in place between matches.
SHARED_MIN = 1024
SHARED: dict[tuple[Callable[[Any], Any], int], tuple[Any, Any]] = {}


def shared(derive: Callable[[Any], Any], source: Any) -> Any:
    """`derive(source)`, computed once per match."""
    key = (derive, id(source))
    hit = SHARED.get(key)
    if hit is not None and hit[0] is source:
        return hit[1]
    value = derive(source)
    SHARED[key] = (source, value)
    return value


def container_elements(items: list[Any]) -> list[Any]:
    """The objects and lists of a long list, in order, picked out once per match (`shared`)."""
    return shared(_containers, items)


def _containers(items: list[Any]) -> list[Any]:
    if _CONTAINERS.isdisjoint(set(map(type, items))):
        return []
    return list(compress(items, map(_CONTAINERS.__contains__, map(type, items))))


def shared_strings(doc: Any) -> list[str]:
    """`all_strings`, a large document's once per match (keyword rules in several functions)."""
    hit = SHARED.get((all_strings, id(doc)))
    if hit is not None and hit[0] is doc:
        return hit[1]
    strings = all_strings(doc, list_values)  # a long list's values shared with the rules reading it
    if len(strings) > SHARED_MIN:
        SHARED[(all_strings, id(doc))] = (doc, strings)
    return strings


def inline_source(
    paths: list[tuple[str, ...]],
    names: list[str],
    prefix: str,
    indent: str = "    ",
    key_values: int | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Source lines resolving several paths from `doc` into the named variables, exactly as `resolve`.

    Paths sharing plain keys share the lookups (`user.username` and `user.groups` read `user`
    once), and paths under one list share one loop over it (every container's image, command and
    securityContext in one pass). Only plain keys are inlined: where a key is missing (a dotted
    key may stand in for it) the rest of the path goes to the general resolver of that level.
    Returns the lines and the objects they call ({name: resolver or collectors}); the lines also
    read MISSING, _LV (`list_values`), _CONT (`container_elements`) and _NODOTS (`no_dotted_keys`).

    With `key_values` the values are for keys (dispatch, specialization levels), which take only
    tuples of strings: a list at the end of a path becomes a tuple of its elements as they are
    (nested lists not flattened), and a field of more than `key_values` values is UNKNOWN (the
    lines read it too) without reading them: a key only narrows which rules run, and an unknown
    one runs them all, so a list of 300,000 items costs a length test, not a walk.
    """

    def as_values(v: str) -> str:
        """The values of a list v as the variable keeps them."""
        if key_values is None:
            return f"_LV({v})"
        return f"(tuple({v}) if len({v}) <= {key_values} else UNKNOWN)"

    lines: list[str] = []
    bindings: dict[str, Any] = {}
    bound: dict[tuple[str, tuple[str, ...]], str] = {}

    def bind(kind: str, parts: tuple[str, ...]) -> str:
        name = bound.get((kind, parts))
        if name is None:
            name = bound[(kind, parts)] = f"{prefix}_{kind}{len(bound)}"
            bindings[name] = cached_resolver(parts) if kind == "r" else cached_collectors(parts)
        return name

    def var(kind: str, n: int) -> str:
        # Temporaries are named by depth (accumulators by position in their loop): a value is dead
        # once its subtree is done, and a function's frame costs per local name on every call
        # (a pod-spec function once held 1,150 locals: a third of what a Binding cost to match).
        return f"{prefix}_{kind}{n}"

    def by_key(
        group: list[tuple[tuple[str, ...], str]], i: int
    ) -> dict[str, list[tuple[tuple[str, ...], str]]]:
        out: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for parts, name in group:
            out.setdefault(parts[i], []).append((parts, name))
        return out

    def emit(node: str, group: list[tuple[tuple[str, ...], str]], i: int, pad: str) -> None:
        """Single values: node is a dict, no list traversed yet."""
        start = len(lines)
        for key, members in by_key(group, i).items():
            c = var("c", i)
            lines.append(f"{pad}{c} = {node}.get({key!r}, MISSING)")
            for parts, name in members:
                if len(parts) == i + 1:  # last part: no dotted key can stand in for it
                    lines.append(f"{pad}{name} = {as_values(c)} if {c}.__class__ is list else {c}")
            deeper = [(parts, name) for parts, name in members if len(parts) > i + 1]
            if not deeper:
                continue
            lines.append(f"{pad}if {c}.__class__ is dict:")
            emit(c, deeper, i + 1, pad + "    ")
            # Plain key missing: the rest of the path as one dotted key is the usual stand-in
            # (`authorization.k8s.io/decision`); shorter dotted keys go to the general resolver.
            lines.append(f"{pad}elif {c} is MISSING:")
            inner = pad + "    "
            single = len(deeper) == 1  # one path: its dotted key is looked up before anything else
            if not single and (len(deeper) > 2 or any(len(parts) - i > 2 for parts, _ in deeper)):
                # Without dotted keys in the object nothing can stand in: all of them are missing.
                lines.append(f"{inner}if _NODOTS({node}):")
                lines.append(f"{inner}    {' = '.join(name for _, name in deeper)} = MISSING")
                lines.append(f"{inner}else:")
                inner += "    "
            for parts, name in deeper:
                lines.append(f"{inner}{name} = {node}.get({'.'.join(parts[i:])!r}, MISSING)")
                if len(parts) - i > 2:
                    guard = f" and not _NODOTS({node})" if single else ""
                    resolver = bind("r", parts[i:])
                    lines.append(f"{inner}if {name} is MISSING{guard}: {name} = {resolver}({node})")
                    if key_values is not None:  # the values found through lists
                        lines.append(f"{inner}if {name}.__class__ is tuple: {name} = {as_values(name)}")
                lines.append(f"{inner}if {name}.__class__ is list: {name} = {as_values(name)}")
            # A list: every path below collects from each element, in one loop.
            lines.append(f"{pad}elif {c}.__class__ is list:")
            walk = pad
            if key_values is not None:
                lines.append(f"{pad}    if len({c}) > {key_values}:")
                lines.append(f"{pad}        {' = '.join(name for _, name in deeper)} = UNKNOWN")
                lines.append(f"{pad}    else:")
                walk += "    "
            accs = [(parts, name, var("a", n)) for n, (parts, name) in enumerate(deeper)]
            lines.append(f"{walk}    {' = '.join(a for _, _, a in accs)} = None")
            for _, _, a in accs:
                lines.append(f"{walk}    {a} = []")
            e = var("e", i)
            # Only objects and lists lead further: a long list's are picked out once per match.
            long = f" if len({c}) <= {SHARED_MIN} else _CONT({c})" if key_values is None else ""
            lines.append(f"{walk}    for {e} in {c}{long}:")
            lines.append(f"{walk}        if {e}.__class__ is dict:")
            collect(e, [(parts, a) for parts, _, a in accs], i + 1, walk + "            ")
            lines.append(f"{walk}        elif {e}.__class__ is list:")  # a scalar reaches no deeper part
            for parts, _, a in accs:
                lines.append(f"{walk}            {bind('k', parts)}[{i + 1}]({e}, {a})")
            for _, name, a in accs:
                found = f"tuple({a})" if key_values is None else as_values(a)
                lines.append(f"{walk}    {name} = {found}")
            lines.append(f"{pad}else:")
            lines.append(f"{pad}    {' = '.join(name for _, name in deeper)} = MISSING")
        keep_dotted_test(node, i, start, pad)

    def keep_dotted_test(node: str, depth: int, start: int, pad: str) -> None:
        """Several missing keys of one object (a pod spec without initContainers, template ...)
        ask once whether it has dotted keys: the answer is kept for the rest of the block."""
        test = f"_NODOTS({node})"
        if sum(line.count(test) for line in lines[start:]) > 1:
            kept = var("d", depth)
            lines[start:] = [
                line.replace(test, f"({kept} if {kept} is not None else ({kept} := {test}))")
                for line in lines[start:]
            ]
            lines.insert(start, f"{pad}{kept} = None")

    def collect(node: str, group: list[tuple[tuple[str, ...], str]], i: int, pad: str) -> None:
        """Several values: node is a dict inside a traversed list; append what each path reaches."""
        start = len(lines)
        for key, members in by_key(group, i).items():
            c = var("c", i)
            lines.append(f"{pad}{c} = {node}.get({key!r}, MISSING)")
            ends = [(parts, a) for parts, a in members if len(parts) == i + 1]
            deeper = [(parts, a) for parts, a in members if len(parts) > i + 1]
            if ends:
                lines.append(f"{pad}if {c} is not MISSING:")
                for parts, a in ends:
                    lines.append(f"{pad}    if {c}.__class__ is not list: {a}.append({c})")
                    # a flat list (the usual command, args): extend in C; nested lists flatten
                    lines.append(
                        f"{pad}    elif list in map(type, {c}): {bind('k', parts)}[{i + 1}]({c}, {a})"
                    )
                    lines.append(f"{pad}    else: {a}.extend({c})")
            if deeper:
                lines.append(f"{pad}if {c}.__class__ is dict:")
                collect(c, deeper, i + 1, pad + "    ")
                lines.append(f"{pad}elif {c}.__class__ is list:")
                for parts, a in deeper:
                    lines.append(f"{pad}    {bind('k', parts)}[{i + 1}]({c}, {a})")
                lines.append(f"{pad}elif {c} is MISSING and not _NODOTS({node}):")
                for parts, a in deeper:
                    lines.append(f"{pad}    {bind('k', parts)}[{i}]({node}, {a})")
        keep_dotted_test(node, i, start, pad)

    emit("doc", list(zip(paths, names, strict=True)), 0, indent)
    return lines, bindings


def all_strings(doc: Any, values: Callable[[list[Any]], tuple[Any, ...]] = _values) -> list[str]:
    """Every string value and object key of a document: what field-less keyword rules search, in no
    set order. A long list's strings come from `values`, its items with nested lists flattened (the
    engine passes `list_values`, which the rules reading that field share)."""
    out: list[str] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        cls = node.__class__
        if cls is dict:
            for k, v in node.items():
                out.append(k)
                if v.__class__ is str:
                    out.append(v)
                elif v.__class__ is dict or v.__class__ is list:
                    stack.append(v)
        elif cls is list:
            if len(node) > LONG_LIST:  # strings and objects picked out at C speed, in order
                flat = values(node)
                types = list(map(type, flat))
                strings = types.count(str)  # by identity: no comparison for a string's type
                if strings == len(types):
                    out.extend(flat)
                    continue
                if strings:
                    out.extend(compress(flat, map(is_, types, repeat(str))))
                if dict in types:
                    stack.extend(compress(flat, map(is_, types, repeat(dict))))
                continue
            for v in node:
                if v.__class__ is str:
                    out.append(v)
                elif v.__class__ is dict or v.__class__ is list:
                    stack.append(v)
        elif cls is str:
            out.append(node)
    return out
