"""Recover what a cut JSON document still holds: every member that is complete in the prefix, with
containers that were cut kept with their complete members. Linear in the prefix per nesting level
(capped), no regular expressions, no recursion deeper than the cap."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"
_MISSING: Any = object()


def parse_prefix(text: str) -> Any:
    """The value a (possibly cut) JSON text begins with, as far as it goes; None when nothing is complete."""
    value, _, _ = _value(text, _skip(text, 0), 0)
    return None if value is _MISSING else value


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


def _value(text: str, pos: int, depth: int) -> tuple[Any, int, bool]:
    """(value or _MISSING, end, complete)."""
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except (ValueError, RecursionError):
        # Cut (or nested beyond the interpreter's limit, or an integer too long to convert): walk the
        # container member by member below.
        pass
    else:
        # A number running to the end of the prefix may have lost digits.
        if end >= len(text) and type(value) in (int, float):
            return _MISSING, len(text), False
        return value, end, True
    if depth >= MAX_DEPTH or pos >= len(text):
        return _MISSING, len(text), False
    first = text[pos]
    if first == "{":
        return _object(text, pos, depth + 1)
    if first == "[":
        return _array(text, pos, depth + 1)
    return _MISSING, len(text), False


def _object(text: str, pos: int, depth: int) -> tuple[Any, int, bool]:
    out: dict[str, Any] = {}
    n = len(text)
    pos = _skip(text, pos + 1)
    while pos < n:
        if text[pos] == "}":
            return out, pos + 1, True
        if text[pos] != '"':
            break
        try:
            key, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        pos = _skip(text, pos)
        if pos >= n or text[pos] != ":":
            break
        value, pos, complete = _value(text, _skip(text, pos + 1), depth)
        if value is not _MISSING:
            out[key] = value
        if not complete:
            break
        pos = _skip(text, pos)
        if pos < n and text[pos] == ",":
            pos = _skip(text, pos + 1)
    return out, n, False


def _array(text: str, pos: int, depth: int) -> tuple[Any, int, bool]:
    out: list[Any] = []
    n = len(text)
    pos = _skip(text, pos + 1)
    while pos < n:
        if text[pos] == "]":
            return out, pos + 1, True
        value, pos, complete = _value(text, pos, depth)
        if value is not _MISSING:
            out.append(value)
        if not complete:
            break
        pos = _skip(text, pos)
        if pos < n and text[pos] == ",":
            pos = _skip(text, pos + 1)
    return out, n, False
