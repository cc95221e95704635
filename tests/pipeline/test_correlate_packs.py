"""Routed correlation contributions travel and wait in packs: a key's rows with their frozen events,
compressed once they are more than a few rows (the events of one key differ in little but ids and times)."""

from __future__ import annotations

import pickle

from kubesigma.connectors.model.event import event_from_bytes, event_to_bytes
from kubesigma.pipeline.correlate import _pack, _unpack
from support.audit_records import T0, secret_reads


def _rows(n: int) -> list[tuple]:
    return [
        (e.time, e.request_id, 0, e.document["objectRef"]["name"], e.event_id, event_to_bytes(e))
        for e in secret_reads(T0, n)
    ]


def test_a_pack_of_many_rows_is_compressed_and_reads_back_the_same() -> None:
    rows = _rows(200)
    packed = _pack(("mallory",), rows)
    assert len(packed) * 5 < len(pickle.dumps((("mallory",), rows)))  # events of one user: far smaller
    group, back = _unpack(packed)
    assert group == ("mallory",) and back == rows
    assert event_from_bytes(back[-1][5]).event_id == rows[-1][4]


def test_a_small_pack_and_one_an_earlier_version_kept_in_state_read_as_pickles() -> None:
    (row,) = _rows(1)
    assert _unpack(_pack(("mallory",), [row])) == (("mallory",), [row])
    earlier = pickle.dumps((("mallory",), [row]), protocol=pickle.HIGHEST_PROTOCOL)
    assert _unpack(earlier) == (("mallory",), [row])
