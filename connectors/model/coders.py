"""The Beam coders of the model's types, registered on import (the pipeline imports this module).

Each type has one serialization: events their `to_bytes` form, the small frozen types pickle (their
`__reduce__` writes just the field values). Size estimates encode nothing: Beam sizes sampled elements
for its metrics (the first ten of every step, then fewer), and encoding batches of events only to size
them cost about as much as matching them."""

from __future__ import annotations

import pickle
from typing import Any

import apache_beam as beam

from kubesigma.connectors.model.event import AuditEvent, event_from_bytes, event_to_bytes
from kubesigma.connectors.model.frozen import load_pickle
from kubesigma.connectors.model.records import DeadLetter, RecordBatch
from kubesigma.connectors.model.rule import RuleInfo


class AuditEventCoder(beam.coders.Coder):
    def encode(self, value: AuditEvent) -> bytes:
        return event_to_bytes(value)

    def decode(self, encoded: bytes) -> AuditEvent:
        return event_from_bytes(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: AuditEvent) -> int:
        return value.size  # the record's bytes as read

    def to_type_hint(self) -> type:
        return AuditEvent


class _Pickled(beam.coders.Coder):
    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return load_pickle(encoded)

    def is_deterministic(self) -> bool:
        return False


class DeadLetterCoder(_Pickled):
    def estimate_size(self, value: DeadLetter) -> int:
        return len(value.raw) + len(value.reason)

    def to_type_hint(self) -> type:
        return DeadLetter


class RecordBatchCoder(_Pickled):
    def estimate_size(self, value: RecordBatch) -> int:
        return value.byte_size()

    def to_type_hint(self) -> type:
        return RecordBatch


class RuleInfoCoder(_Pickled):
    def estimate_size(self, value: RuleInfo) -> int:
        return 64  # a rule travels with every match; its size is not the data's

    def to_type_hint(self) -> type:
        return RuleInfo


beam.coders.registry.register_coder(AuditEvent, AuditEventCoder)
beam.coders.registry.register_coder(DeadLetter, DeadLetterCoder)
beam.coders.registry.register_coder(RecordBatch, RecordBatchCoder)
beam.coders.registry.register_coder(RuleInfo, RuleInfoCoder)
