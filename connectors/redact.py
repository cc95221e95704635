"""Credentials never leave the pipeline: every output (alerts, dead letters, indexed events) is
redacted here, while rules evaluate the event as it came.

Redacted: Secret `data`/`stringData` (wherever a Secret object appears: request, response, lists,
GKE request/response), TokenRequest tokens, kubeconfig credentials, any value under a credential-like
key, and bearer tokens or JWTs inside any string.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import re2

REDACTED = "[REDACTED]"

# Keys whose values are credentials wherever they appear (kubeconfig users, token reviews, env dumps).
CREDENTIAL_KEYS = frozenset(
    {
        "token",
        "password",
        "client-key-data",
        "id-token",
        "refresh-token",
        "access-token",
        "bearertoken",
        "bearer_token",
        "access_token",
        "refresh_token",
        "id_token",
        "secretaccesskey",
        "sessiontoken",
        "private_key",
        "privatekey",
    }
)
_SECRET_KINDS = frozenset({"Secret"})
# HTTP authentication schemes are ASCII: `(?a)` keeps Unicode case folding (U+0131, a dotless i) out.
_BEARER = re.compile(r"(?i)\b((?a:bearer|basic))\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_QUICK = re.compile(r"(?ai)bearer|basic|eyJ")
# For raw bytes that are not parseable JSON (cut or garbled records): where a credential-bearing member's
# value starts; `_value_end` finds where it ends. `\\*"`: also inside JSON carried in a string, where
# quotes are escaped. No pattern starts with a repeat: on a long run of backslashes one would be tried at
# every offset (quadratic; the fuzzer found it).
_RAW_MEMBER = re.compile(
    rb'(?i)"(data|stringdata|'
    + b"|".join(re.escape(key.encode()) for key in sorted(CREDENTIAL_KEYS))
    + rb')\\*"\s*:\s*'
)
_RAW_SECRET_MAPS = (b"data", b"stringdata")  # a Secret's payload: only an object counts


# Whatever `redact_document` would replace leaves a trace in the value's compact JSON: a credential key
# (RE2's case folding also takes the Kelvin sign for k, the one non-ASCII letter `str.lower` makes
# ASCII), a Secret or TokenRequest kind, a bearer, basic or JWT marker. Most events carry none, and one
# search (RE2: a DFA, ~2 µs for an event, where `re` tries each alternative at every offset) spares a
# walk of every member. A property test holds the two to the same result.
# `\\*"` after the opening quote: the same markers inside JSON carried in a string (a CloudWatch
# message, an AKS log line, a last-applied-configuration annotation), escaped once per embedding.
_TRACE = re2.compile(
    rb'(?i)"(?:'
    + b"|".join(re.escape(key.encode()) for key in sorted(CREDENTIAL_KEYS))
    + rb')\\*":|"kind\\*":\\*"(?:Secret|TokenRequest)\\*"|bearer|basic|eyJ'
)
_EMBEDDED_TRACE = re2.compile(_TRACE.pattern.replace(b"|bearer|basic|eyJ", b""))


def redact_document(value: Any) -> Any:
    """A decoded JSON value with credentials replaced: a copy where anything is, else the value itself
    (callers do not change what they get)."""
    if isinstance(value, dict | list) and _clean(value):
        return value
    return _redact(value)


def _clean(value: dict[str, Any] | list[Any]) -> bool:
    """Whether the value's JSON shows no trace of a credential (then `_redact` would return it as is)."""
    try:
        return _TRACE.search(orjson.dumps(value)) is None
    except orjson.JSONEncodeError:  # not JSON after all (a key that is no string): walk it
        return False


def _redact(value: Any, searched: bool = False) -> Any:
    """The value with credentials replaced (`searched`: a list above it was searched in vain)."""
    if isinstance(value, dict):
        kind = value.get("kind")
        if not isinstance(kind, str):  # a list or object here is odd, not a reason to fail the alert
            kind = None
        out: dict[str, Any] = {}
        for key, item in value.items():
            lowered = key.lower() if isinstance(key, str) else key
            if lowered in CREDENTIAL_KEYS and item not in (None, "", {}, []):
                out[key] = _redact_leaves(item)
            elif kind in _SECRET_KINDS and key in ("data", "stringData") and isinstance(item, dict):
                out[key] = dict.fromkeys(item, REDACTED)  # keep which keys exist: analysts need that
            elif kind == "TokenRequest" and key == "status" and isinstance(item, dict):
                out[key] = {k: (REDACTED if _is_token(k) else _redact(v, searched)) for k, v in item.items()}
            else:
                out[key] = _redact(item, searched)
        return out
    if isinstance(value, list):
        # A long list is searched whole first: where the trace is elsewhere in the record, its
        # 150,000 fuzzed items are not walked one call each. Below a list searched in vain lists are
        # walked: long lists nested in long lists are not searched again at every level.
        if not searched and len(value) > _LONG_LIST:
            if _clean(value):
                return value
            searched = True
        return [_redact(item, searched) for item in value]
    if isinstance(value, str):
        if value[:1] in _JSON_STARTS and _EMBEDDED_TRACE.search(value.encode("utf-8", "surrogatepass")):
            value = _redact_embedded(value)
        if _marked(value):
            return _JWT.sub(REDACTED, _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value))
    return value


_JSON_STARTS = ("{", "[")
# Past this length a list is first checked whole (a fuzzed 150,000 items), not by a call per item.
_LONG_LIST = 32


def _marked(text: str) -> bool:
    """`_QUICK.search(text)`; a long text is first searched by RE2, a DFA (a fuzzed megabyte: ~3 ms,
    where `re` takes ~15-30 ms). It misses none: UTF-8 keeps every ASCII letter a byte of its own."""
    if len(text) > _LONG_TEXT and _QUICK_DFA.search(text.encode("utf-8", "surrogatepass")) is None:
        return False
    return _QUICK.search(text) is not None


_LONG_TEXT = 4096
_QUICK_DFA = re2.compile(rb"(?i)bearer|basic|eyj")


def _is_token(key: Any) -> bool:
    """A TokenRequest status's token, under any spelling a case-insensitive decoder would accept."""
    return isinstance(key, str) and key.lower() == "token"


def _redact_embedded(text: str) -> str:
    """JSON carried in a string, redacted as a record is (by pattern when it is cut or not JSON)."""
    return redact_raw(text.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass")


def _redact_leaves(value: Any) -> Any:
    if isinstance(value, dict):
        return dict.fromkeys(value, REDACTED)
    if isinstance(value, list):
        return [REDACTED for _ in value]
    return REDACTED


def redact_raw(raw: bytes) -> bytes:
    """Redact a raw record: structurally when it parses, by pattern when it does not."""
    try:
        return orjson.dumps(redact_document(orjson.loads(raw)))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):
        pass  # not JSON, or nested deeper than it can be written back (a dead letter's raw record)
    text = _redact_raw_members(raw)
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return text
    if _QUICK.search(decoded):
        decoded = _JWT.sub(REDACTED, _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", decoded))
    return decoded.encode("utf-8")


def _redact_raw_members(raw: bytes) -> bytes:
    """Each credential member's value (a string, or an array or object however deep, cut or whole)
    replaced in unparseable bytes. One pass: a match inside a value already replaced is skipped."""
    out: list[bytes] = []
    at = 0
    for match in _RAW_MEMBER.finditer(raw):
        start = match.end()
        if start <= at:
            continue
        if match.group(1).lower() in _RAW_SECRET_MAPS and raw[start : start + 1] != b"{":
            continue
        end = _value_end(raw, start)
        if end == start:
            continue
        out.append(raw[at:start])
        out.append(b'"' + REDACTED.encode() + b'"')
        at = end
    if not out:
        return raw
    out.append(raw[at:])
    return b"".join(out)


# A string's rest after its opening quote, escapes honoured; the tokens of an array or object.
_STRING_REST = re.compile(rb'(?:[^"\\]+|\\.)*"?', re.S)
_TOKEN = re.compile(rb'("(?:[^"\\]+|\\.)*"?)|([\[{])|([\]}])|[^"\[\]{}]+', re.S)
_SCALAR = re.compile(rb"[^,}\]\s]*")
# A credential's array or object not closed within this many bytes is taken to run to the end of the
# record: none is that long, and the scan stays linear however many members a garbled record holds.
VALUE_SCAN = 64 * 1024


def _value_end(raw: bytes, start: int) -> int:
    """Where the JSON value at `start` ends (the end of the bytes when it is cut); `start` when there is
    none. A string ends at its closing quote (escapes honoured; when the quote itself is escaped, being
    JSON inside a string, at the next quote); arrays and objects at their matching bracket, brackets
    inside strings not counted; a number or literal at the next delimiter."""
    first = raw[start : start + 1]
    if first == b"\\":  # a string whose quotes are escaped
        quote = raw.find(b'"', start)
        close = raw.find(b'"', quote + 1) if quote >= 0 else -1
        return len(raw) if close < 0 else close + 1
    if first == b'"':
        return _STRING_REST.match(raw, start + 1).end()  # type: ignore[union-attr]  # always matches
    if first not in (b"[", b"{"):
        return _SCALAR.match(raw, start).end()  # type: ignore[union-attr]  # always matches
    depth = 0
    for token in _TOKEN.finditer(raw, start, min(len(raw), start + VALUE_SCAN)):
        if token.lastindex == 2:
            depth += 1
        elif token.lastindex == 3:
            depth -= 1
            if depth == 0:
                return token.end()
    return len(raw)
