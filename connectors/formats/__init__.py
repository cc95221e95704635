"""Wire formats: one decoder per format, found per record by a cheap sniff, no flags needed.

A decoder turns one parsed JSON value into outcomes, one per record: an `AuditEvent`, a `DeadLetter`
or a `Skipped`. Containers (an audit `EventList`, cloud envelopes) yield one outcome per item, so
"read" counts records after unpacking, the same everywhere: read = normalized + dead_lettered + skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from kubesigma.connectors.formats._json import fits_depth, unwritable
from kubesigma.connectors.model import AuditEvent, DeadLetter, RawRecord, Skipped, Source

Outcome = AuditEvent | DeadLetter | Skipped


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What decoders need besides the record: defaults from options, and a way to recurse."""

    cluster: str | None = None  # --cluster-name, when the envelope names none

    def decode(self, value: Any, source: Source, size: int, raw: bytes = b"") -> Iterable[Outcome]:
        return decode_value(value, source, size=size, raw=raw, context=self)


@dataclass(frozen=True, slots=True)
class Format:
    """A registered wire format. `sniff` must be cheap: it runs on every record until one claims it."""

    name: str
    sniff: Callable[[Any], bool]
    decode: Callable[[Any, Source, int, bytes, DecodeContext], Iterator[Outcome]]
    priority: int = 100  # lower sniffs first: specific envelopes before the formats they carry
    # Sniff and decode of a one-record format in one call: the outcome, or None when the record is
    # not this format's. Used for the first format in order (native audit Events): their records
    # then cost one call instead of four, a tenth of what decoding adds to parsing.
    claim: Callable[[Any, Source, int, bytes, DecodeContext], Outcome | None] | None = None


_REGISTRY: list[Format] = []


def register(fmt: Format) -> Format:
    """Add a format; by priority, the first whose sniff claims a record decodes it."""
    if any(f.name == fmt.name for f in _REGISTRY):
        raise ValueError(f"format {fmt.name!r} is registered twice")
    global _ordered, _claim
    _REGISTRY.append(fmt)
    _REGISTRY.sort(key=lambda f: (f.priority, f.name))
    _ordered = _claim = None
    return fmt


def formats() -> tuple[Format, ...]:
    global _ordered, _claim
    _load_builtin_formats()
    if _ordered is None:
        _ordered = tuple(_REGISTRY)
        _claim = _ordered[0].claim if _ordered else None
    return _ordered


_ordered: tuple[Format, ...] | None = None  # formats() as of the last register()
_claim: Callable[[Any, Source, int, bytes, DecodeContext], Outcome | None] | None = None  # the first's
_NO_CONTEXT = DecodeContext()


def decode_value(
    value: Any,
    source: Source,
    *,
    size: int = 0,
    raw: bytes = b"",
    context: DecodeContext | None = None,
) -> Iterable[Outcome]:
    """Decode one parsed JSON value (a record or a container of records).

    The format is sniffed now; the outcomes come from the returned iterable (a tuple for a single
    record, not a generator: one generator layer per record cost as much as building the event)."""
    return _decode(value, source, size, raw, context or _NO_CONTEXT)


def _decode(value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext) -> Iterable[Outcome]:
    ordered = _ordered or formats()
    if _claim is not None:
        outcome = _claim(value, source, size, raw, ctx)
        if outcome is not None:
            return (outcome,)
        ordered = ordered[1:]  # the first format refused it
    return _sniff(value, source, size, raw, ctx, ordered)


def _sniff(
    value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext, ordered: tuple[Format, ...]
) -> Iterable[Outcome]:
    for fmt in ordered:
        try:
            claimed = fmt.sniff(value)
        except Exception:  # a sniff must never take a record down with it
            claimed = False
        if claimed:
            return _at_least_one(fmt.name, fmt.decode(value, source, size, raw, ctx), source)
    return (DeadLetter("decode", describe_unknown(value), source, raw or _dump(value)),)


def _at_least_one(name: str, outcomes: Iterable[Outcome], source: Source) -> Iterator[Outcome]:
    """A container that holds no record (an EventList without items, an empty array) still counts
    once, as skipped: every record read is accounted for."""
    empty = True
    for outcome in outcomes:
        empty = False
        yield outcome
    if empty:
        yield Skipped(f"{name} record holding no records", source)


def decode_record(record: RawRecord, context: DecodeContext | None = None) -> Iterable[Outcome]:
    """Parse and decode one raw record read from a source."""
    value = record.value
    data = record.data
    if value is None:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            return (DeadLetter("decode", f"not valid JSON: {err}", record.source, data),)
    claim = _claim  # _decode, inline: this runs for every record
    if claim is None:
        return _decode(value, record.source, len(data), data, context or _NO_CONTEXT)
    outcome = claim(value, record.source, len(data), data, context or _NO_CONTEXT)
    if outcome is not None:
        return (outcome,)
    return _sniff(value, record.source, len(data), data, context or _NO_CONTEXT, (_ordered or formats())[1:])


def decode_carried(record: RawRecord, context: DecodeContext | None = None) -> Iterable[Outcome]:
    """`decode_record` for a pipeline, whose outputs write what they carry back as JSON: a record orjson
    read but cannot write (nested deeper than it writes) is a dead letter here, before any output fails
    on it. The check is a pass over the record's bytes, about a twentieth of matching it: callers that
    only match events (the engine's API, its benchmark) leave it out."""
    data = record.data
    if not fits_depth(data):
        try:
            refused = unwritable(orjson.loads(data) if record.value is None else record.value)
        except orjson.JSONDecodeError:
            refused = None  # decode_record says why
        if refused is not None:
            return (
                DeadLetter("decode", f"not a record kubesigma can carry: {refused}", record.source, data),
            )
    return decode_record(record, context)


def format_of(value: Any) -> str | None:
    """The name of the format that claims a parsed record (the one decoding it), or None."""
    for fmt in formats():
        try:
            if fmt.sniff(value):
                return fmt.name
        except Exception:  # as in decoding: a sniff never fails a record
            continue
    return None


def describe_unknown(value: Any) -> str:
    """Why a JSON value is not a record kubesigma knows, in words an operator can act on."""
    if isinstance(value, dict):
        kind = value.get("kind")
        if "kind" in value and not isinstance(kind, str):
            return f"not a Kubernetes audit event: `kind` is {type(kind).__name__} {kind!r}, not a string"
        if kind == "Event" and "auditID" not in value:
            return "not a Kubernetes audit event: kind Event without auditID (a core/v1 Event?)"
        keys = ", ".join(sorted(map(str, value))[:8])
        return f"unknown record format: JSON object with keys [{keys}] matches no registered format"
    return f"unknown record format: JSON {type(value).__name__}, not an object"


def _dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return repr(value).encode()


_loaded = False
_loading = False
# A Beam SDK worker decodes bundles in several threads: the first records of each could otherwise see a
# registry still being filled and dead-letter valid Events as "matches no registered format".
_LOAD_LOCK = threading.RLock()


def _load_builtin_formats() -> None:
    """Import the built-in format modules once; each registers itself on import. Other threads wait
    until every one is registered; a format module that asks for the formats while loading gets them as
    registered so far."""
    global _loaded, _loading
    if _loaded:
        return
    with _LOAD_LOCK:
        if _loaded or _loading:
            return
        _loading = True
        try:
            import importlib
            import pkgutil

            for mod in pkgutil.iter_modules(__path__):
                if not mod.name.startswith("_"):
                    importlib.import_module(f"{__name__}.{mod.name}")
        finally:
            _loading = False
        _loaded = True
