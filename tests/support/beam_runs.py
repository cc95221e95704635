"""Run kubesigma's detect → correlate → suppress → alert stages on real Beam runners and collect alerts.

Batch: FnApiRunner over `Create`. Streaming: BundleBasedDirectRunner over a TestStream whose script
(elements, watermark moves) the test writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that

from kubesigma.connectors.model import AuditEvent
from kubesigma.detections.correlation import CorrelationPlan
from kubesigma.detections.engine import RuleSet
from kubesigma.pipeline.correlate import Correlate
from kubesigma.pipeline.decide import decide_alerts
from kubesigma.pipeline.transforms import Detect
from support.audit_records import T0, secret_reads
from support.correlation_pack import SECRET_ENUMERATION, load


def project(doc: dict[str, Any]) -> tuple[str, str, int | None]:
    """What the tests compare: rule, alert id, and how many repeats a follow-up folded."""
    ks = doc["kubesigma"]
    folded = ks.get("suppression", {}).get("count")
    return doc["rule"]["id"], ks["alert_id"], folded


def alerts_stage(
    events: beam.PCollection,
    ruleset: RuleSet,
    plan: CorrelationPlan,
    *,
    suppress: float | None = None,
    lateness: float = 0.0,
    bounded: bool | None = None,
    projection: Callable[[dict[str, Any]], Any] = project,
) -> beam.PCollection:
    matches = events | "Detect" >> Detect(ruleset)
    hits = matches | "Correlate" >> Correlate(plan, lateness, bounded)
    documents = decide_alerts(matches, hits, plan, 1 << 20, suppress or None, bounded)
    return documents | "AllAlerts" >> beam.Flatten() | "Project" >> beam.Map(projection)


def _options(runner: str, streaming: bool) -> PipelineOptions:
    options = PipelineOptions([])
    options.view_as(StandardOptions).runner = runner
    options.view_as(StandardOptions).streaming = streaming
    return options


def run_batch(
    events: Sequence[AuditEvent],
    ruleset: RuleSet,
    plan: CorrelationPlan,
    check: Callable[[list[Any]], None],
    **kw: Any,
) -> dict[str, int]:
    """The batch pipeline on FnApiRunner; returns the run's kubesigma counters."""
    with beam.Pipeline(options=_options("FnApiRunner", False)) as p:
        batches = (
            p
            | beam.Create([[e] for e in events])
            | "Stamp" >> beam.Map(lambda b: beam.window.TimestampedValue(b, b[0].time))
        )
        assert_that(alerts_stage(batches, ruleset, plan, **kw), check)
    counters = p.result.metrics().query(MetricsFilter().with_namespace("kubesigma"))["counters"]
    totals: dict[str, int] = {}
    for counter in counters:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + counter.committed
    return totals


def run_portable(
    events: Sequence[AuditEvent],
    ruleset: RuleSet,
    plan: CorrelationPlan,
    check: Callable[[list[Any]], None],
    args: Sequence[str],
    **kw: Any,
) -> None:
    """The batch pipeline on a portable runner (Prism, Flink) with the SDK harness in this process.
    Correlation runs its state and timer code (as in streaming) although the input is bounded: the
    runner's state and timers are what these tests are for, and a batch run on FnApiRunner (grouped
    by key, no state) is the reference they must match."""
    with beam.Pipeline(options=PipelineOptions([*args, "--environment_type=LOOPBACK"])) as p:
        batches = (
            p
            | beam.Create([[e] for e in events])
            | "Stamp" >> beam.Map(lambda b: beam.window.TimestampedValue(b, b[0].time))
        )
        assert_that(alerts_stage(batches, ruleset, plan, bounded=False, **kw), check)


def run_stream(
    stream: TestStream, ruleset: RuleSet, plan: CorrelationPlan, check: Callable[[list[Any]], None], **kw: Any
) -> None:
    with beam.Pipeline(options=_options("BundleBasedDirectRunner", True)) as p:
        assert_that(alerts_stage(p | stream, ruleset, plan, **kw), check)


def script(*steps: tuple[str, Any]) -> TestStream:
    """A TestStream from ("add", [events]) and ("watermark", t) steps; ends at a finite time, then infinity."""
    stream = TestStream()
    last = 0.0
    for kind, arg in steps:
        if kind == "add":
            stream = stream.add_elements([beam.window.TimestampedValue([e], e.time) for e in arg])
        else:
            last = max(last, arg)
            stream = stream.advance_watermark_to(arg)
    return stream.advance_watermark_to(last + 86_400).advance_watermark_to_infinity()


class Collected:
    """An assert_that matcher that records what the pipeline produced (it runs on a pickled copy, so
    it reports through a file), for comparing runs in one test."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, actual: list[Any]) -> None:
        self.path.write_bytes(orjson.dumps(sorted(actual, key=repr)))

    @property
    def items(self) -> list[tuple[Any, ...]]:
        return [tuple(x) for x in orjson.loads(self.path.read_bytes())]


def finished_documents(directory: Path) -> list[dict[str, Any]]:
    """The JSON documents of the files a streaming job has finished in `directory` (Beam's WriteToFiles
    keeps files it is still writing hidden, as dot files)."""
    if not directory.is_dir():
        return []
    return [
        orjson.loads(line)
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith(".")
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def secret_read_workload() -> list[AuditEvent]:
    """Three identities reading secrets: one enumerates (two alerts), one too slowly, one the same secret."""
    return (
        secret_reads(T0, 25, step=3)
        + secret_reads(T0 + 30, 12, step=40, user="bob", first_n=200)
        + secret_reads(T0 + 5, 10, step=2, user="carol", first_n=300, distinct=False)
    )


def direct_runner_alerts(
    tmp_path: Path, events: Sequence[AuditEvent], **kw: Any
) -> tuple[RuleSet, CorrelationPlan, list[tuple[Any, ...]]]:
    """The rules, their plan, and the alerts a batch run on FnApiRunner gives: what a portable runner
    must give too."""
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    expected = Collected(tmp_path / "direct.json")
    run_batch(events, ruleset, plan, expected, **kw)
    return ruleset, plan, expected.items
