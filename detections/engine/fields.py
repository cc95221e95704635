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
    return _cached_resolver(parts)(doc)


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item.__class__ is list:
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


@lru_cache(maxsize=4096)
def _cached_resolver(parts: tuple[str, ...]) -> Any:
    return make_resolver(parts)


def make_resolver(parts: tuple[str, ...]) -> Any:
    """`resolve` for one path, with every candidate dotted key joined in advance (no per-event joins)."""
    n = len(parts)
    table = tuple(tuple(candidates(parts, i)) for i in range(n))

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
            collect(node, i, out)
            return tuple(out)
        return MISSING

    def collect(node: Any, i: int, out: list[Any]) -> None:
        if i == n:
            if node.__class__ is list:
                for item in node:
                    if item.__class__ is list:
                        collect(item, i, out)
                    else:
                        out.append(item)
            else:
                out.append(node)
            return
        if node.__class__ is dict:
            for key, j in table[i]:
                child = node.get(key, MISSING)
                if child is not MISSING:
                    collect(child, j, out)
                    return
        elif node.__class__ is list:
            for item in node:
                collect(item, i, out)

    return resolver


def resolver_source(name: str, parts: tuple[str, ...]) -> str:
    """Python source of a resolver specialised for one path (dict walk inlined, lists delegated)."""
    if len(parts) == 1:
        key = parts[0]
        return (
            f"def {name}(doc):\n"
            f"    v = doc.get({key!r}, MISSING)\n"
            f"    return tuple(_flatten(v)) if v.__class__ is list else v\n"
        )
    if len(parts) == 2:
        a, b = parts
        return (
            f"def {name}(doc):\n"
            f"    o = doc.get({a!r}, MISSING)\n"
            f"    if o.__class__ is dict:\n"
            f"        v = o.get({b!r}, MISSING)\n"
            f"    elif o is MISSING:\n"
            f"        v = doc.get({a + '.' + b!r}, MISSING)\n"
            f"    elif o.__class__ is list:\n"
            f"        return _resolve(doc, {parts!r})\n"
            f"    else:\n"
            f"        return MISSING\n"
            f"    return tuple(_flatten(v)) if v.__class__ is list else v\n"
        )
    return f"{name} = _make_resolver({parts!r})\n"


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
