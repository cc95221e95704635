"""The shared model's serializations: one per type, and pickles written before the model moved."""

from __future__ import annotations

import importlib
import importlib.util
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
from kubesigma.connectors.model.frozen import _MOVED_CLASSES, MOVED_MODULES, load_pickle


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


def test_suppression_state_written_before_the_streaming_split_still_loads(datasets: Path) -> None:
    """Suppression keeps a group's run in state, with the latest folded candidate and its correlation
    hit, pickled under pipeline/streaming.py's paths until the stages were split: it loads as the same
    objects from their new homes."""
    from kubesigma.detections.correlation import Contribution, Firing
    from kubesigma.detections.suppression import FoldedRun
    from kubesigma.pipeline.alerts import Candidate
    from kubesigma.pipeline.correlate import CorrelationHit
    from kubesigma.pipeline.suppress import _RunMeta

    event = _gke_events(datasets)[0]
    first = Contribution(event.time, event.identity, 0, None, event.event_id)
    firing = Firing("c1", ("alice",), "a1", first, first, event.time, event.time, 1.0, 1, ("e1",), ("r1",))
    rule = RuleInfo("c1", "A correlation", "high", KUBERNETES_AUDIT)
    candidate = Candidate(rule, event.time, "a1", ("alice",), event, CorrelationHit(firing, event))
    run = FoldedRun.open(event.time, 600.0, "a0")
    run.fold(event.time, "a1")
    state = _RunMeta(horizon=event.time, run=run, representative=candidate)
    data = pickle.dumps(state, protocol=0)  # protocol 0 names classes as text
    for module, name in (("suppress", "_RunMeta"), ("alerts", "Candidate"), ("correlate", "CorrelationHit")):
        data = data.replace(
            f"ckubesigma.pipeline.{module}\n{name}\n".encode(),
            f"ckubesigma.pipeline.streaming\n{name}\n".encode(),
        )
    assert data.count(b"kubesigma.pipeline.streaming") == 3
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(data)
    loaded = load_pickle(data)
    assert type(loaded) is _RunMeta and type(loaded.representative) is Candidate
    assert loaded == state


def test_no_path_a_class_moved_from_resolves_any_more() -> None:
    """`load_pickle` tries plain `pickle.loads` first and maps paths only when that fails: a moved class's
    old path that still resolved (a re-export) could load as something else."""
    for module in MOVED_MODULES:
        assert importlib.util.find_spec(module) is None, module
    for module, name in _MOVED_CLASSES:
        found = importlib.util.find_spec(module) is not None
        assert not found or not hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_dead_letters_and_rules_cross_beam_by_their_coders() -> None:
    dead = DeadLetter("decode", "not valid JSON", Source("f.log", line=3), b"{nope")
    rule = RuleInfo("r1", "A rule", "high", KUBERNETES_AUDIT)
    for value in (dead, rule):
        coder = beam.coders.registry.get_coder(type(value))
        assert type(coder).__name__ == f"{type(value).__name__}Coder"
        assert coder.decode(coder.encode(value)) == value
    assert orjson.loads(orjson.dumps(dead.as_dict()))["source"] == {"uri": "f.log", "line": 3}
