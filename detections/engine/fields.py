"""Field paths in decoded JSON documents, resolved the way Sigma rules address them.

`a.b.c` walks objects and lists (any element of a list is a candidate). At each level the plain
key (`a`) is taken when the object has it; otherwise the longest dotted key that exists (`a.b.c`,
then `a.b`), so `annotations.authorization.k8s.io/decision` reaches the annotation whose key itself
holds dots and a slash. Plain-first keeps a path of n parts at n lookups (longest-first would cost
n²/2 per path, the dominant cost on pod specs); the two differ only for an object holding both
`a` and `a.b` keys, which no Kubernetes, GCP or CloudTrail object does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


class _Missing:
    """The field is absent (distinct from a JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


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


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item.__class__ is list:
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


@lru_cache(maxsize=4096)
def cached_resolver(parts: tuple[str, ...]) -> Any:
    """`make_resolver`, one per path (resolvers hold no state)."""
    return make_resolver(parts)


def make_resolver(parts: tuple[str, ...]) -> Any:
    """`resolve` for one path, with every candidate dotted key joined in advance (no per-event joins)."""
    n = len(parts)
    table = tuple(tuple(candidates(parts, i)) for i in range(n))
    collect = _collectors(parts)

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
            return tuple(_flatten(node)) if node.__class__ is list else node
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
        src.append(f"            C{i}(e, out)")
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
    """A list field's values as a tuple, nested lists flattened (the common flat list: one C pass)."""
    t = tuple(v)
    return tuple(_flatten(v)) if list in map(type, t) else t


def inline_source(
    paths: list[tuple[str, ...]], names: list[str], prefix: str, indent: str = "    "
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Source lines resolving several paths from `doc` into the named variables, exactly as `resolve`.

    Paths sharing plain keys share the lookups (`user.username` and `user.groups` read `user`
    once). Only plain keys are inlined: where a key is missing (a dotted key may stand in for it)
    or holds a list or a scalar, the rest of the path goes to the general resolver of that level.
    Returns the lines and those resolvers ({name: path tail}, to bind with `make_resolver`); the
    lines also read MISSING, _LV (`list_values`) and _NODOTS (`no_dotted_keys`).
    """
    lines: list[str] = []
    tails: dict[str, tuple[str, ...]] = {}

    def tail(rest: tuple[str, ...]) -> str:
        for t, known in tails.items():
            if known == rest:
                return t
        t = f"{prefix}_t{len(tails)}"
        tails[t] = rest
        return t

    def emit(node: str, group: list[tuple[tuple[str, ...], str]], i: int, pad: str) -> None:
        by_key: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for parts, name in group:
            by_key.setdefault(parts[i], []).append((parts, name))
        for key, members in by_key.items():
            c = f"{prefix}_c{len(lines)}"
            lines.append(f"{pad}{c} = {node}.get({key!r}, MISSING)")
            for parts, name in members:
                if len(parts) == i + 1:  # last part: no dotted key can stand in for it
                    lines.append(f"{pad}{name} = _LV({c}) if {c}.__class__ is list else {c}")
            deeper = [(parts, name) for parts, name in members if len(parts) > i + 1]
            if deeper:
                lines.append(f"{pad}if {c}.__class__ is dict:")
                emit(c, deeper, i + 1, pad + "    ")
                # Plain key missing: the rest of the path as one dotted key is the usual stand-in
                # (`authorization.k8s.io/decision`); shorter dotted keys go to the general resolver.
                lines.append(f"{pad}elif {c} is MISSING:")
                inner = pad + "    "
                if len(deeper) > 2 or any(len(parts) - i > 2 for parts, _ in deeper):
                    # Without dotted keys in the object nothing can stand in: all of them are missing.
                    lines.append(f"{inner}if _NODOTS({node}):")
                    lines.append(f"{inner}    {' = '.join(name for _, name in deeper)} = MISSING")
                    lines.append(f"{inner}else:")
                    inner += "    "
                for parts, name in deeper:
                    lines.append(f"{inner}{name} = {node}.get({'.'.join(parts[i:])!r}, MISSING)")
                    if len(parts) - i > 2:
                        lines.append(f"{inner}if {name} is MISSING: {name} = {tail(parts[i:])}({node})")
                    lines.append(f"{inner}if {name}.__class__ is list: {name} = _LV({name})")
                lines.append(f"{pad}else:")
                for parts, name in deeper:
                    lines.append(f"{pad}    {name} = {tail(parts[i:])}({node})")

    emit("doc", list(zip(paths, names, strict=True)), 0, indent)
    return lines, tails


def resolver_source(name: str, parts: tuple[str, ...]) -> str:
    """Python source of a resolver specialised for one path (plain keys inlined, the rest delegated)."""
    lines, tails = inline_source([parts], ["v"], name)
    defs = "".join(f"{t} = _make_resolver({p!r})\n" for t, p in tails.items())
    return defs + f"def {name}(doc):\n" + "\n".join(lines) + "\n    return v\n"


def all_strings(doc: Any) -> list[str]:
    """Every string value and object key of a document: what field-less keyword rules search."""
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
            for v in node:
                if v.__class__ is str:
                    out.append(v)
                elif v.__class__ is dict or v.__class__ is list:
                    stack.append(v)
        elif cls is str:
            out.append(node)
    return out
