"""The shared model's serializations: one per type, and pickles written before the model moved."""

from __future__ import annotations

import pickle
from pathlib import Path

import apache_beam as beam
import orjson
import pytest

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import (
    KUBERNETES_AUDIT,
    AuditEvent,
    DeadLetter,
    RawRecord,
    RuleInfo,
    Source,
    coders,  # noqa: F401  (registers the coders)
)
from kubesigma.connectors.model.frozen import load_pickle


def _gke_events(datasets: Path) -> list[AuditEvent]:
    lines = (datasets / "format-samples" / "gke-cloud-audit-logentries.jsonl").read_bytes().splitlines()
    return [
        e
        for n, line in enumerate(lines, 1)
        for e in decode_record(RawRecord(line, Source("gke.jsonl", line=n)))
        if isinstance(e, AuditEvent)
    ]


def test_an_event_has_one_serialization_for_pickle_and_beam(datasets: Path) -> None:
    events = _gke_events(datasets)
    assert events and all(len(e.views) == 2 and e.cloud is not None for e in events)
    coder = beam.coders.registry.get_coder(AuditEvent)
    for event in events:
        blob = event.to_bytes()
        assert coder.encode(event) == blob
        assert coder.decode(blob) == event
        assert pickle.loads(pickle.dumps(event)) == event


class _AsBefore:
    """Pickles like a model object did before the move: (class, field values), by the class's path."""

    def __init__(self, obj: object, fields: tuple[object, ...]) -> None:
        self.obj, self.fields = obj, fields

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return type(self.obj), self.fields


def _written_before_the_move(obj: object, fields: tuple[object, ...]) -> bytes:
    data = pickle.dumps(_AsBefore(obj, fields), protocol=0)  # protocol 0 names classes as text
    moved = data.replace(b"ckubesigma.connectors.model.event\n", b"ckubesigma.connectors.event\n")
    return moved.replace(b"ckubesigma.connectors.model.rule\n", b"ckubesigma.detections.rule\n")


def test_events_and_rules_pickled_where_they_lived_before_still_load(datasets: Path) -> None:
    """A streaming job updated in place keeps such pickles in its state (suppression keeps candidates,
    with their event and rule): they load as the same objects."""
    event = _gke_events(datasets)[0]
    fields = tuple(getattr(event, f) for f in AuditEvent.__dataclass_fields__)
    old_event = _written_before_the_move(event, fields)
    assert b"kubesigma.connectors.event" in old_event
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old_event)
    assert load_pickle(old_event) == event

    rule = RuleInfo("r1", "A rule", "high", KUBERNETES_AUDIT, tags=("attack.t1609",))
    old_rule = _written_before_the_move(rule, tuple(getattr(rule, f) for f in RuleInfo.__dataclass_fields__))
    assert b"kubesigma.detections.rule" in old_rule
    assert load_pickle(old_rule) == rule


def test_dead_letters_and_rules_cross_beam_by_their_coders() -> None:
    dead = DeadLetter("decode", "not valid JSON", Source("f.log", line=3), b"{nope")
    rule = RuleInfo("r1", "A rule", "high", KUBERNETES_AUDIT)
    for value in (dead, rule):
        coder = beam.coders.registry.get_coder(type(value))
        assert type(coder).__name__ == f"{type(value).__name__}Coder"
        assert coder.decode(coder.encode(value)) == value
    assert orjson.loads(orjson.dumps(dead.as_dict()))["source"] == {"uri": "f.log", "line": 3}
