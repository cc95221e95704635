"""Sigma values (after pySigma applied the modifiers) turned into leaf tests over one field.

pySigma resolves modifiers into typed values (`contains` → a SigmaString with wildcards, `cidr` →
SigmaCIDRExpression, `gt` → SigmaCompareExpression, ...). Each becomes a `Leaf`: a Python predicate
on a single JSON value (for list elements and compile-time folding) plus the inline expression the
code generator writes. One class per value kind, looked up through `LEAF_BUILDERS`.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from typing import Any

import re2
from sigma.exceptions import SigmaValueError
from sigma.modifiers import SigmaValueModifier, SigmaWideModifier, modifier_mapping
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from kubesigma.detections.engine.fields import MISSING

# --- Modifiers pySigma 1.5.1 lacks or gets wrong, registered in its modifier registry -------------
# The specification names UTF-16LE `utf16le` (alias of `wide`); pySigma 1.5.1 knows only `wide`.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)


class _EncodedString(SigmaString):
    """A Sigma string whose byte form is not its UTF-8 text (UTF-16 with a byte order mark)."""

    encoded: bytes

    def __bytes__(self) -> bytes:
        return self.encoded


class UTF16WithBOMModifier(SigmaValueModifier[SigmaString, SigmaString]):
    """`utf16`: byte order mark FF FE, then UTF-16LE. pySigma 1.5.1 writes the mark as UTF-8
    (EF BB BF), so `utf16|base64offset` would never match; this keeps the true bytes for base64."""

    def modify(self, val: SigmaString) -> SigmaString:
        if val.contains_special():
            raise SigmaValueError("utf16 cannot encode wildcards", source=self.source)
        out = _EncodedString()
        out.encoded = b"\xff\xfe" + val.to_plain().encode("utf-16le")
        # one character per byte, so base64offset's length arithmetic holds
        out.s = [out.encoded.decode("latin-1")]
        return out


modifier_mapping["utf16"] = UTF16WithBOMModifier

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_META = set("\\.+*?()|[]{}^$")
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class UnsupportedRule(ValueError):
    """A construct the engine cannot evaluate exactly: the rule is refused, never mis-evaluated."""


# ---------------------------------------------------------------------------------------------
# Conversions of one event value, shared by generated code and predicates.


def scalar_str(v: Any) -> str | None:
    """The text a string pattern is compared with: strings as is, numbers and booleans as JSON writes them."""
    c = v.__class__
    if c is str:
        return v
    if c is bool:
        return "true" if v else "false"
    if c is int or c is float:
        return str(v)
    return None


def lower_str(v: Any) -> str | None:
    c = v.__class__
    if c is str:
        return v.lower()
    return scalar_str(v)


def number(v: Any) -> int | float | None:
    c = v.__class__
    if c is int or c is float:
        return v
    if c is str and _NUMERIC.match(v):
        return float(v) if any(ch in v for ch in ".eE") else int(v)
    return None


def timestamp(v: Any) -> datetime | None:
    """An event time field: RFC 3339 text or epoch seconds (milliseconds when implausibly large)."""
    c = v.__class__
    try:
        if c is str:
            s = v.strip()
            if s.endswith(("Z", "z")):
                s = s[:-1] + "+00:00"
            # fromisoformat takes at most 6 fractional digits; audit logs carry up to 9.
            m = re.match(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", s)
            if m:
                s = f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}{m.group(3)}"
            dt = datetime.fromisoformat(s)
            return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
        if c is int or c is float:
            return datetime.fromtimestamp(v / 1000 if v > 1e11 else v, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


_IP_CACHE: dict[str, Any] = {}


def parse_ip(v: Any) -> Any:
    """An address parsed once per distinct text (parsing dominates CIDR tests); None if not an address."""
    if v.__class__ is not str:
        return None
    ip = _IP_CACHE.get(v, False)
    if ip is False:
        try:
            ip = ipaddress.ip_address(v.strip())
        except ValueError:
            ip = None
        if len(_IP_CACHE) >= 65536:
            _IP_CACHE.clear()
        _IP_CACHE[v] = ip
    return ip


def ip_in(v: Any, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    ip = parse_ip(v)
    return ip is not None and ip in network


def ip_in_any(v: Any, networks: tuple[Any, ...]) -> bool:
    ip = parse_ip(v)
    if ip is None:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


def exists(x: Any) -> bool:
    if x is MISSING or x is None:
        return False
    if x.__class__ is tuple:
        return any(e is not None for e in x)
    return True


def is_null(x: Any) -> bool:
    if x is MISSING or x is None:
        return True
    if x.__class__ is tuple:
        return not x or any(e is None for e in x)
    return False


def any_of(pred: Callable[[Any], bool], x: Any) -> bool:
    return any(pred(e) for e in x)


def field_ref(x: Any, y: Any, mode: str) -> bool:
    """fieldref: some value of one field equals (starts/ends with) some value of the other, case-insensitive."""
    xs = x if x.__class__ is tuple else (x,)
    ys = y if y.__class__ is tuple else (y,)
    for a in xs:
        la = lower_str(a)
        if la is None:
            continue
        for b in ys:
            lb = lower_str(b)
            if lb is None:
                continue
            if (
                (mode == "eq" and la == lb)
                or (mode == "startswith" and la.startswith(lb))
                or (mode == "endswith" and la.endswith(lb))
            ):
                return True
    return False


def compile_re2(pattern: str, what: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as e:
        raise UnsupportedRule(f"{what} {pattern!r} is not a valid RE2 expression: {e}") from e


def re2_escape(s: str) -> str:
    return "".join("\\" + ch if ch in _RE2_META else ch for ch in s)


# ---------------------------------------------------------------------------------------------
# Leaves


@dataclass(eq=False)
class Leaf:
    """A test of one field (or, for keywords, of the whole document).

    `kind` drives code generation; leaves of one field and one kind under an OR merge into a
    single test (set membership, tuple startswith, `in` chain). `pred` tests one JSON value.
    `needs` names the per-field variables the inline code reads (l: lowered text, s: text,
    n: number, t: timestamp, e: exists).
    """

    field: str | None
    kind: str
    value: Any
    pred: Callable[[Any], bool]
    needs: str = ""
    other_field: str | None = None  # fieldref
    # Leaves on the same field and kind may merge into one test under an OR.
    mergeable: bool = False
    extra: dict[str, Any] = dc_field(default_factory=dict)
    # The fields the test reads (asked of every rule each time it is folded).
    reads: frozenset[str] = dc_field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reads = frozenset(f for f in (self.field, self.other_field) if f is not None)

    def evaluate(self, x: Any, other: Any = MISSING) -> bool:
        """The leaf on a resolved field value (MISSING, a value, or a tuple of values)."""
        k = self.kind
        if k == "null":
            return is_null(x)
        if k == "exists":
            return exists(x) is self.value
        if k == "fieldref":
            return x is not MISSING and other is not MISSING and field_ref(x, other, self.value)
        if x is MISSING:
            return False
        if x.__class__ is tuple:
            return any(self.pred(e) for e in x)
        return self.pred(x)


def _string_shape(s: SigmaString, lower: bool) -> tuple[str, Any]:
    """Classify a Sigma string: ('eq', text) | ('prefix'|'suffix'|'contains', text) | ('any', None) | ('glob', regex)."""
    parts: list[Any] = []
    for p in s.s:
        if isinstance(p, Placeholder):
            raise UnsupportedRule(
                f"placeholder %{p.name}% has no value list (add detections/lists/{p.name}.txt)"
            )
        if isinstance(p, str):
            parts.append(p.lower() if lower else p)
        else:
            parts.append(p)
    # merge adjacent text parts and collapse repeated `*`
    merged: list[Any] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif p is SpecialChars.WILDCARD_MULTI and merged and merged[-1] is SpecialChars.WILDCARD_MULTI:
            continue
        else:
            merged.append(p)
    star = SpecialChars.WILDCARD_MULTI
    if not merged:
        return "eq", ""
    if all(isinstance(p, str) for p in merged):
        return "eq", merged[0]
    if merged == [star]:
        return "any", None
    if len(merged) == 2 and merged[0] is star and isinstance(merged[1], str):
        return "suffix", merged[1]
    if len(merged) == 2 and merged[1] is star and isinstance(merged[0], str):
        return "prefix", merged[0]
    if len(merged) == 3 and merged[0] is star and merged[2] is star and isinstance(merged[1], str):
        return "contains", merged[1]
    regex = "".join(re2_escape(p) if isinstance(p, str) else (".*" if p is star else ".") for p in merged)
    return "glob", compile_re2("(?s)" + regex, "wildcard pattern")


def _string_pred(shape: str, payload: Any, conv: Callable[[Any], str | None]) -> Callable[[Any], bool]:
    if shape == "eq":
        return lambda v: conv(v) == payload
    if shape == "any":
        return lambda v: conv(v) is not None
    if shape == "prefix":
        return lambda v: (t := conv(v)) is not None and t.startswith(payload)
    if shape == "suffix":
        return lambda v: (t := conv(v)) is not None and t.endswith(payload)
    if shape == "contains":
        return lambda v: (t := conv(v)) is not None and payload in t
    return lambda v: (t := conv(v)) is not None and payload.fullmatch(t) is not None


def string_leaf(fld: str | None, s: SigmaString) -> Leaf:
    cased = isinstance(s, SigmaCasedString)
    shape, payload = _string_shape(s, lower=not cased)
    conv = scalar_str if cased else lower_str
    return Leaf(
        fld,
        ("c" if cased else "") + shape,
        payload,
        _string_pred(shape, payload, conv),
        needs="s" if cased else "l",
        mergeable=shape in ("eq", "prefix", "suffix", "contains"),
    )


class _EndOrBeforeFinalNewline:
    """A pattern with `$`, searched as PCRE (and Python) do: without the m flag their `$` matches at
    the end and also before a final newline, RE2's only at the end. A text ending in a newline is
    searched again without it, where RE2's `$` stands where theirs does. Exact when nothing but
    anchors can follow a `$` (`_dollar_followed`), the only patterns let through: the rest of a
    pattern then cannot tell the two texts apart (a newline is not a word character)."""

    __slots__ = ("rx",)

    def __init__(self, rx: Any) -> None:
        self.rx = rx

    def search(self, text: str) -> Any:
        found = self.rx.search(text)
        if found is None and text.endswith("\n"):
            found = self.rx.search(text[:-1])
        return found


def _dollar_followed(pattern: str) -> bool | None:
    """Whether a `$` outside the m flag can be followed by more than anchors (`a$\\n`, `(a$|b)c`,
    `(a$)*`), where PCRE's `$` before a final newline cannot be emulated on RE2; None when Python's
    parser cannot read the pattern (pySigma has read it with Python's `re` already: a safety net)."""
    # Python's own regex parser (CPython's `re._parser`, untyped): it tells where each `$` stands.
    P: Any = importlib.import_module("re._parser")
    K: Any = importlib.import_module("re._constants")

    try:
        tree = P.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    if tree.state.flags & K.SRE_FLAG_MULTILINE:
        return False

    def zero_width(items: Any) -> bool:
        for op, av in items:
            if op is K.AT:
                continue
            if op is K.SUBPATTERN and zero_width(av[-1]):
                continue
            if op is K.BRANCH and all(zero_width(b) for b in av[1]):
                continue
            return False
        return True

    def followed(items: Any, after_zero: bool) -> bool:
        for n, (op, av) in enumerate(items):
            rest = after_zero and zero_width(items[n + 1 :])
            if op is K.AT and av is K.AT_END and not rest:
                return True
            if op is K.SUBPATTERN and not av[1] & K.SRE_FLAG_MULTILINE and followed(av[-1], rest):
                return True
            if op is K.BRANCH and any(followed(b, rest) for b in av[1]):
                return True
            if op in (K.MAX_REPEAT, K.MIN_REPEAT, K.POSSESSIVE_REPEAT) and followed(
                av[2], rest and av[1] <= 1
            ):
                return True  # a repeated body can follow itself
            if op in (K.ASSERT, K.ASSERT_NOT, K.ATOMIC_GROUP) and followed(av[-1], False):
                return True
        return False

    return followed(tree.data, True)


def regex_leaf(fld: str | None, r: SigmaRegularExpression) -> Leaf:
    flags = ""
    if SigmaRegularExpressionFlag.IGNORECASE in r.flags:
        flags += "i"
    if SigmaRegularExpressionFlag.MULTILINE in r.flags:
        flags += "m"
    if SigmaRegularExpressionFlag.DOTALL in r.flags:
        flags += "s"
    pattern = r.regexp.to_plain()
    rx = compile_re2((f"(?{flags})" if flags else "") + pattern, "regular expression")
    if "m" not in flags and "$" in pattern:
        if _dollar_followed(pattern) is not False:  # None: unreadable to Python's parser
            raise UnsupportedRule(
                f"regular expression {pattern!r}: a `$` that more of the pattern can follow matches"
                " before a final newline in PCRE, which RE2 cannot express (use the m flag or `\\n?$`)"
            )
        rx = _EndOrBeforeFinalNewline(rx)
    return Leaf(
        fld, "re", rx, lambda v: (t := scalar_str(v)) is not None and rx.search(t) is not None, needs="s"
    )


def cidr_leaf(fld: str | None, c: SigmaCIDRExpression) -> Leaf:
    net = c.network
    return Leaf(fld, "cidr", net, lambda v: ip_in(v, net), needs="s", mergeable=True)


_OPS: dict[Any, Callable[[Any, Any], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
}
_OP_TEXT = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
}


def compare_leaf(fld: str | None, c: SigmaCompareExpression) -> Leaf:
    if c.op not in _OPS:
        if getattr(CompareOperators, "NEQ", None) is c.op:
            num = c.number.number
            return Leaf(fld, "neqnum", num, lambda v: (n := number(v)) is not None and n != num, needs="n")
        raise UnsupportedRule(f"comparison {c.op} is not supported")
    op = _OPS[c.op]
    num = c.number.number
    return Leaf(
        fld,
        "cmp",
        num,
        lambda v: (n := number(v)) is not None and op(n, num),
        needs="n",
        extra={"op": _OP_TEXT[c.op]},
    )


def number_leaf(fld: str | None, n: SigmaNumber) -> Leaf:
    num = n.number
    return Leaf(fld, "num", num, lambda v: (m := number(v)) is not None and m == num, needs="n")


def bool_leaf(fld: str | None, b: SigmaBool) -> Leaf:
    text = "true" if b.boolean else "false"
    return Leaf(fld, "eq", text, lambda v: lower_str(v) == text, needs="l", mergeable=True)


def null_leaf(fld: str | None, _: SigmaNull) -> Leaf:
    if fld is None:
        raise UnsupportedRule("null must be bound to a field")
    return Leaf(fld, "null", None, lambda v: v is None)


def exists_leaf(fld: str | None, e: SigmaExists) -> Leaf:
    return Leaf(fld, "exists", bool(e.exists), lambda v: v is not None)


def fieldref_leaf(fld: str | None, r: SigmaFieldReference) -> Leaf:
    mode = "startswith" if r.starts_with else "endswith" if r.ends_with else "eq"
    return Leaf(fld, "fieldref", mode, lambda v: False, other_field=r.field)


_PARTS: dict[Any, Callable[[datetime], int]] = {
    TimestampPart.MINUTE: lambda d: d.minute,
    TimestampPart.HOUR: lambda d: d.hour,
    TimestampPart.DAY: lambda d: d.day,
    TimestampPart.WEEK: lambda d: d.isocalendar()[1],
    TimestampPart.MONTH: lambda d: d.month,
    TimestampPart.YEAR: lambda d: d.year,
}
_PART_EXPR = {
    TimestampPart.MINUTE: "{t}.minute",
    TimestampPart.HOUR: "{t}.hour",
    TimestampPart.DAY: "{t}.day",
    TimestampPart.WEEK: "{t}.isocalendar()[1]",
    TimestampPart.MONTH: "{t}.month",
    TimestampPart.YEAR: "{t}.year",
}


def timestamp_part_leaf(fld: str | None, tp: SigmaTimestampPart) -> Leaf:
    part = _PARTS[tp.timestamp_part]
    num = int(tp.number)
    return Leaf(
        fld,
        "tpart",
        num,
        lambda v: (d := timestamp(v)) is not None and part(d) == num,
        needs="t",
        extra={"expr": _PART_EXPR[tp.timestamp_part]},
    )


# Order matters: subclasses before their bases (SigmaTimestampPart is a SigmaNumber,
# SigmaCasedString a SigmaString).
LEAF_BUILDERS: list[tuple[type, Callable[[Any, Any], Leaf]]] = [
    (SigmaTimestampPart, timestamp_part_leaf),
    (SigmaString, string_leaf),
    (SigmaRegularExpression, regex_leaf),
    (SigmaCIDRExpression, cidr_leaf),
    (SigmaCompareExpression, compare_leaf),
    (SigmaNumber, number_leaf),
    (SigmaBool, bool_leaf),
    (SigmaNull, null_leaf),
    (SigmaExists, exists_leaf),
    (SigmaFieldReference, fieldref_leaf),
]


def build_leaf(fld: str | None, value: SigmaType) -> Leaf:
    for cls, builder in LEAF_BUILDERS:
        if isinstance(value, cls):
            leaf = builder(fld, value)
            if fld is None and leaf.kind not in (
                "eq",
                "prefix",
                "suffix",
                "contains",
                "glob",
                "any",
                "ceq",
                "cprefix",
                "csuffix",
                "ccontains",
                "cglob",
                "cany",
                "re",
            ):
                raise UnsupportedRule(
                    f"a keyword (field-less) value of type {type(value).__name__} is not supported"
                )
            return leaf
    raise UnsupportedRule(f"value type {type(value).__name__} ({value!r}) is not supported by the engine")
