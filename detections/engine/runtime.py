"""What generated code runs on: the helpers its namespace binds, and the generated entry points that
pick a function per event (a logsource's dispatcher, a specialization level) with their keys.

Dispatch keys and level keys are looked up as read and canonicalized only on a miss (`dispatch_key`,
`canonical_key`), so the usual event pays one dict lookup per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from kubesigma.detections.engine import fields as F
from kubesigma.detections.engine import modifiers as M


def _dotted_top(doc: dict[str, Any]) -> tuple[str, ...]:
    """Top-level keys holding a dot (a field path may start inside one); usually none."""
    return tuple(k for k in doc if "." in k) if "." in "".join(doc) else ()


def _has_root(dotted: tuple[str, ...], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in dotted)


_ONLY_STRINGS = frozenset({str}).issuperset
# Kinds of value with a text (`lower_str` gives one), and numbers (whose text is `str`).
_TEXT = frozenset({str, int, float, bool})
_NUMBERS = frozenset({int, float})
# Kinds whose equal values (of one kind) have one text: not floats (0.0 and -0.0 are equal).
_READ_ALIKE = frozenset({str, int, bool, type(None)})
_VALUE = itemgetter(1)


def lowered_values(x: tuple[Any, ...]) -> list[str]:
    """`lower_str` of each value that has text, for the tests that ask whether some value passes
    (membership, prefixes, `in` their NUL-joined text). A long list gives each distinct text once, in
    no set order, computed at C speed, not by a call per element (a fuzzed 150,000 copies of one),
    and once per match (`fields.shared`)."""
    if len(x) > F.LONG_LIST:
        return F.shared(_distinct_lowered, x) if len(x) > F.SHARED_MIN else _distinct_lowered(x)
    if _ONLY_STRINGS(map(type, x)):
        return list(map(str.lower, x))
    return _each_lowered(x)


def _distinct_lowered(x: tuple[Any, ...]) -> list[str]:
    if F.only_strings(x):
        distinct = set(x)
        joined = "\x00".join(distinct)  # lowered at once: a third of a call per value
        if joined.count("\x00") == len(distinct) - 1:  # no value holds the separator
            return joined.lower().split("\x00")
        return list(map(str.lower, distinct))
    kinds = set(map(type, x))
    if kinds.isdisjoint(_TEXT):  # nulls, objects, lists
        return []
    if kinds <= _READ_ALIKE:
        # distinct values; with numbers and booleans, distinct (kind, value): 1 and True stay apart
        mixed = int in kinds and bool in kinds
        x = tuple(map(_VALUE, set(zip(map(type, x), x, strict=True)))) if mixed else tuple(set(x))
    if kinds <= _NUMBERS:
        return list(map(str, x))  # `scalar_str` of a number
    return _each_lowered(x)


def _each_lowered(x: tuple[Any, ...]) -> list[str]:
    out = []
    for v in x:
        t = M.lower_str(v)
        if t is not None:
            out.append(t)
    return out


def joined_lower(x: tuple[Any, ...]) -> str:
    """The lowered text of a field's values joined by NUL (what `contains` searches on a list);
    a long list's once per match.

    Lowering the joined text equals joining the lowered values: NUL is neither cased nor
    case-ignorable, so no casing context crosses it."""
    if len(x) > F.SHARED_MIN:
        return F.shared(_joined_lower, x)
    if _ONLY_STRINGS(map(type, x)):
        return "\x00".join(x).lower()
    return "\x00".join(lowered_values(x))


def _joined_lower(x: tuple[Any, ...]) -> str:
    if F.only_strings(x):
        return "\x00".join(x).lower()
    return "\x00".join(lowered_values(x))


def _any_startswith(values: list[str], prefixes: tuple[str, ...]) -> bool:
    return any(v.startswith(prefixes) for v in values)


def _any_endswith(values: list[str], suffixes: tuple[str, ...]) -> bool:
    return any(v.endswith(suffixes) for v in values)


def _any_contains(values: list[str], needles: tuple[str, ...]) -> bool:
    return any(n in v for v in values for n in needles)


def _any_value(pred: Callable[[Any], bool], x: tuple[Any, ...]) -> bool:
    """`any_of`; a long list of strings tests each distinct string once (a pattern on 150,000
    copies of one value). Only strings: 1, 1.0 and True, or 0.0 and -0.0, are equal but read apart."""
    if len(x) > F.LONG_LIST and F.only_strings(x):
        return any(map(pred, set(x)))
    return any(map(pred, x))


_UNHASHABLE: list[Any] = []


class _Unknown:
    """A key value that narrows nothing: its field is not folded (an object, a long list)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
# Values of one field a key holds at most; past it the field's key value is UNKNOWN. A key only
# narrows which rules run, so this costs no detection: enough for an enterprise user's groups.
KEY_VALUES = 64


def _memo_key(v: Any) -> Any:
    """Memo key part of a non-string value; lists and objects are unhashable (evaluated directly)."""
    c = v.__class__
    if c is int or c is float or c is bool or v is None or v is F.MISSING:
        return (c, v)
    return _UNHASHABLE


# The names generated code calls, bound in every generated function's namespace.
RUNTIME: dict[str, Any] = {
    "_MK": _memo_key,
    "_NODOTS": F.no_dotted_keys,
    "_LSEQ": lowered_values,
    "_JLOW": joined_lower,
    "_ANYSW": _any_startswith,
    "_ANYEW": _any_endswith,
    "_ANYIN": _any_contains,
    "_DOTTED_TOP": _dotted_top,
    "_HAS_ROOT": _has_root,
    "MISSING": F.MISSING,
    "UNKNOWN": UNKNOWN,
    "_resolve": F.resolve,
    "_make_resolver": F.cached_resolver,  # resolvers hold no state: one per path
    "_flatten": F._flatten,
    "_LV": F.list_values,
    "_CONT": F.container_elements,
    "_ALLSTR": F.shared_strings,
    "_LS": M.lower_str,
    "_SS": M.scalar_str,
    "_NUM": M.number,
    "_TS": M.timestamp,
    "_EXISTS": M.exists,
    "_NULL": M.is_null,
    "_A": _any_value,
    "_IPIN": M.ip_in,
    "_IPINS": M.ip_in_any,
    "_FREF": M.field_ref,
}


def dispatcher(
    paths: Sequence[str], buckets: dict[Any, Any], make_bucket: Callable[[Any], Any]
) -> Callable[[dict[str, Any]], list[Any]]:
    """`match(doc)` of a logsource: the dispatch key read inline, then its bucket's function
    (`make_bucket(key)` on first sight; `buckets` remembers it under `dispatch_key(key)`).

    As in `level_function`, the values as read are looked up directly: stored keys hold only
    strings, MISSING and UNKNOWN, so any other value misses and `make_bucket` canonicalizes it."""
    inline, bindings = F.inline_source(
        [F.split_path(p) for p in paths], [f"v{i}" for i in range(len(paths))], "K", key_values=KEY_VALUES
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
    namespace = dict(RUNTIME)
    namespace.update(bindings)
    namespace.update({"BUCKETS": buckets, "MAKE_BUCKET": make_bucket})
    exec(compile("\n".join(body) + "\n", "<kubesigma dispatch>", "exec"), namespace)
    return namespace["match"]


def dispatch_key(values: Sequence[Any]) -> tuple[Any, ...]:
    """A dispatch key as buckets store it: strings and MISSING as they are, anything else UNKNOWN."""
    return tuple(v if v.__class__ is str or v is F.MISSING else UNKNOWN for v in values)


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
        if len(v) > KEY_VALUES:
            return UNKNOWN
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
        [F.split_path(p) for p in paths], [f"v{i}" for i in range(len(paths))], "K", key_values=KEY_VALUES
    )
    key = "v0" if len(paths) == 1 else "(" + "".join(f"v{i}, " for i in range(len(paths))) + ")"
    # Fields the rules compare as numbers (status codes) usually hold numbers: their values take
    # the typed form here rather than on a miss, as every event would.
    typed = [
        f"    if v{i}.__class__ is not str and v{i} is not MISSING and v{i}.__class__ is not tuple"
        f" and v{i} is not UNKNOWN:"
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
    namespace = dict(RUNTIME)
    namespace.update(bindings)
    namespace.update({"TABLE": table, "SPECIALIZE": specialize})
    exec(compile("\n".join(body) + "\n", f"<kubesigma level {', '.join(paths)}>", "exec"), namespace)
    return namespace["match"]
