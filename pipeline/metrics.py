"""The run's metrics: the namespaces every stage reports in, and a streaming job's processing lag."""

from __future__ import annotations

import sys
import threading
import time as wallclock
from collections.abc import Iterator

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from kubesigma.connectors.model import AuditEvent

NAMESPACE = "kubesigma"
RULE_HITS = "kubesigma.rule_hits"  # one counter per rule id: the run summary's table


class _Lag(beam.DoFn):
    """Processing lag (wall clock minus event time) and event-time progress of decoded events."""

    def setup(self) -> None:
        self.lag = Metrics.distribution(NAMESPACE, "processing_lag_ms")
        self.event_time = Metrics.gauge(NAMESPACE, "max_event_time_ms")

    def process(self, events: list[AuditEvent]) -> Iterator[list[AuditEvent]]:
        if events:
            newest = max(e.time for e in events)
            now = wallclock.time()
            self.lag.update(int((now - newest) * 1000))
            self.event_time.set(int(newest * 1000))
        yield events


class MeasureLag(beam.PTransform):
    """Batches of events, passed on as they are, measured."""

    def expand(self, batches: pvalue.PCollection) -> pvalue.PCollection:
        return batches | "Lag" >> beam.ParDo(_Lag())


class _Progress(beam.DoFn):
    """Counts records read and rewrites one line on standard error at most every `every` seconds.
    Only meaningful on in-process runners (FnApiRunner), where the DoFn's stderr is the command's."""

    _lock = threading.Lock()
    _records = 0
    _started = 0.0
    _shown = 0.0

    def __init__(self, prefix: str, every: float) -> None:
        self.prefix = prefix
        self.every = every

    def start_bundle(self) -> None:
        with _Progress._lock:
            if not _Progress._shown:
                _Progress._started = wallclock.monotonic()
                _Progress._shown = _Progress._started

    def process(self, batch: list[object]) -> Iterator[None]:
        now = wallclock.monotonic()
        with _Progress._lock:
            _Progress._records += len(batch)
            if now - _Progress._shown >= self.every:
                _Progress._shown = now
                elapsed = now - _Progress._started
                sys.stderr.write(f"{self.prefix}: {_Progress._records:,} records read, {elapsed:.0f}s\n")
                sys.stderr.flush()
        return iter(())

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls._records = 0
            cls._shown = 0.0


class ShowProgress(beam.PTransform):
    """A side branch over batches of raw records: a progress line on standard error on long inputs."""

    def __init__(self, prefix: str, every: float = 5.0) -> None:
        super().__init__()
        self.prefix = prefix  # not `label`: a PTransform's label is its step name
        self.every = every

    def expand(self, batches: pvalue.PCollection) -> pvalue.PCollection:
        _Progress.reset()
        return batches | "Progress" >> beam.ParDo(_Progress(self.prefix, self.every))
