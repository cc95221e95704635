"""The run's metrics: the namespaces every stage reports in, and a streaming job's processing lag."""

from __future__ import annotations

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
