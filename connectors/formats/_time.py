"""RFC 3339 timestamps as the audit formats write them (micro- or nanoseconds, `Z`), to epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime

_fromisoformat = datetime.fromisoformat


def parse_rfc3339(value: object) -> float | None:
    """Epoch seconds, or None when the value is not an RFC 3339 timestamp."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    try:
        # Python 3.11's C parser takes `Z` and cuts nanoseconds to microseconds: ~0.5 µs per call.
        parsed = _fromisoformat(value)
    except ValueError:
        return _parse_general(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _parse_general(value: str) -> float | None:
    """Spellings the C parser refuses: lower-case `z`, surrounding space, over-long fractions."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dot = text.find(".", 19)
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        frac = text[dot + 1 : end][:6].ljust(6, "0")
        text = f"{text[:dot]}.{frac}{text[end:]}"
    try:
        parsed = _fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
