"""What a parsed record must be for the pipeline to carry it: no deeper than its outputs can be written
(orjson writes at most 254 levels, Python walks about 1,000) and, for values Python's json module parsed
(concatenated or pretty-printed documents, cut messages), free of what orjson refuses to write back."""

from __future__ import annotations

from typing import Any

import orjson

# Real audit records nest fewer than 30 levels; this leaves room and stays under orjson's 254.
MAX_DEPTH = 200


def refusal(value: Any, raw: bytes = b"") -> str | None:
    """Why the record cannot go through, or None. Cheap for the common case: a record whose raw bytes
    hold fewer brackets than the limit cannot be nested deeper than it."""
    if raw and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return None
    if _deeper_than(value, MAX_DEPTH):
        return f"JSON nested more than {MAX_DEPTH} levels deep"
    return None


def unwritable(value: Any) -> str | None:
    """`refusal`, and for values not parsed by orjson: what orjson cannot write (lone surrogates,
    integers beyond 64 bits), or None."""
    reason = refusal(value)
    if reason is not None:
        return reason
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as err:
        return f"JSON that cannot be written back: {err}"
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    if type(value) is not dict and type(value) is not list:
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for item in node.values() if type(node) is dict else node:
            if type(item) is dict or type(item) is list:
                stack.append((item, depth + 1))
    return False
