"""Memory over a long input, and `kubesigma run --workers 2` against one worker (issue 17, points 3-4).

    python bench/pipeline.py --memory --json [--events 2000000] [--speedup-events 1000000]

Memory: the batch pipeline (FnApiRunner) and the streaming path (BundleBasedDirectRunner, streaming,
with suppression) of bench/pipeline.py, each in a fresh process, over events generated inside the
pipeline (slices of the bench's cluster mix, made as they are read: no list of them anywhere; a stream
gets them in event-time order, its watermark following, as from a live source). Peak RSS
(VmHWM) when 10% and 50% of the events have been generated and when the run has ended (100%);
`rss_growth` is the last over the first, minus 1. Correlation state: bytes per group at 100k groups.

Two workers: `kubesigma run` over the same generated log (a file) with the default options and with
`--workers 2`; events per second of wall clock (and CPU seconds of the whole process tree); the alert
ids of both must be equal.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

from kubesigma.connectors.model import RawRecord, Source
from kubesigma.connectors.model.records import RecordBatch
from kubesigma.connectors.sources import RECORD_BATCH
from kubesigma.detections.correlation import compile_correlations
from kubesigma.detections.engine import RuleSet

BENCH = Path(__file__).resolve().parent
SLICE = 20_000  # events per generated slice
MARKS = (0.1, 0.5)
# A shared machine must not run out of memory: generation stops once the process holds this much
# (the batch path then still grows several times over while it groups what it holds: issue 17).
RSS_CAP_MIB = float(os.environ.get("KUBESIGMA_BENCH_RSS_CAP_MIB", 2048))
_generated = 0
_samples: dict[str, dict[str, float]] = {}


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _sample(mark: str) -> None:
    _samples[mark] = {
        "rss_mib": round(_status_mib("VmHWM"), 1),
        "current_mib": round(_status_mib("VmRSS"), 1),
    }


class _Generate(beam.DoFn):
    """A slice of the log as raw records (as the file reader makes them), in batches."""

    def __init__(self, n: int) -> None:
        self.n = n

    def process(self, index: int) -> Iterator[RecordBatch]:
        from pipeline import iter_docs

        global _generated
        if "stopped" in _samples:
            return
        start = index * SLICE
        batch = RecordBatch()
        for i, doc in enumerate(iter_docs(min(SLICE, self.n - start), seed=1, start=start), start + 1):
            batch.append(
                RawRecord.build(orjson.dumps(doc), Source.build("generated", i, None, None, None), doc)
            )  # type: ignore[attr-defined]
            if len(batch) >= RECORD_BATCH:
                yield batch
                batch = RecordBatch()
                _generated += RECORD_BATCH
                if _status_mib("VmRSS") > RSS_CAP_MIB:
                    _samples.setdefault("stopped", {"events": _generated})
                    return
                for mark in MARKS:
                    if f"{mark:.0%}" not in _samples and _generated >= mark * self.n:
                        _sample(f"{mark:.0%}")
        if batch:
            _generated += len(batch)
            yield batch


def _stream_of_slices(count: int) -> TestStream:
    """The slices' indices as a stream delivers them: each at its first event's time, the watermark at
    the start of the slice just delivered (a source's watermark follows what it has read). Without it
    the watermark would stay at the beginning of time until the last slice was read, and every
    event-time state would be held to the end."""
    stream = TestStream()
    for index in range(count):
        start = slice_start(index)
        stream = stream.add_elements([TimestampedValue(index, start)]).advance_watermark_to(start)
    return stream.advance_watermark_to(slice_start(count) + 86_400).advance_watermark_to_infinity()


def slice_start(index: int) -> float:
    from pipeline import EVENT_INTERVAL, T0

    return T0 + index * SLICE * EVENT_INTERVAL


def memory_run(path: str, n: int) -> dict[str, Any]:
    """One path over `n` generated events, in this (fresh) process."""
    from pipeline import RULES, detection_graph

    ruleset = RuleSet.load(RULES)
    plan = compile_correlations(ruleset)
    streaming = path == "streaming"
    options = PipelineOptions([])
    options.view_as(StandardOptions).runner = "BundleBasedDirectRunner" if streaming else "FnApiRunner"
    options.view_as(StandardOptions).streaming = streaming
    _sample("start")
    started = time.perf_counter()
    count = (n + SLICE - 1) // SLICE
    with beam.Pipeline(options=options) as p:
        if streaming:
            slices = p | _stream_of_slices(count)
        else:
            slices = p | beam.Create(range(count)) | beam.Reshuffle()
        detection_graph(
            slices | beam.ParDo(_Generate(n)), ruleset, plan, streaming=streaming, one_per_request=True
        )
    _sample("100%")
    reached = [m for m in ("10%", "50%", "100%") if m in _samples]
    marks = [_samples[m]["rss_mib"] for m in reached]
    stopped = _samples.get("stopped")
    return {
        "events": _generated,
        # Over the cap, generation stopped: "100%" is then the end of the events generated.
        "stopped_over_rss_cap_mib": RSS_CAP_MIB if stopped else None,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_mib": dict(zip(reached, marks, strict=True)),
        "rss_growth": round(marks[-1] / marks[0] - 1, 3),
        "rss_at_start_mib": _samples["start"]["rss_mib"],
    }


def _child(path: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(BENCH / "pipeline.py"), "--memory-child", path, "--events", str(n)],
        check=True,
        capture_output=True,
    )
    return orjson.loads(out.stdout.splitlines()[-1])


def _timed_run(args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def alert_ids(path: Path) -> list[str]:
    with path.open("rb") as handle:
        return sorted(orjson.loads(line)["kubesigma"]["alert_id"] for line in handle if line.strip())


def two_workers(n: int) -> dict[str, Any]:
    """`kubesigma run` over one generated log, default against `--workers 2`; same alert ids."""
    from pipeline import write_log

    kubesigma = str(Path(sys.executable).with_name("kubesigma"))
    with tempfile.TemporaryDirectory(prefix="kubesigma-workers-") as tmp:
        log = write_log(Path(tmp, "audit.log"), n)
        runs: dict[str, Any] = {}
        ids = {}
        for name, extra in (("default", []), ("two_workers", ["--workers", "2"])):
            alerts = Path(tmp, f"{name}.alerts.jsonl")
            cmd = [kubesigma, "run", "--input", str(log), "--alerts-out", str(alerts)]
            wall, cpu = _timed_run([*cmd, "--dead-letter", str(Path(tmp, f"{name}.dead.jsonl")), *extra])
            ids[name] = alert_ids(alerts)
            runs[name] = {"seconds": round(wall, 1), "cpu_s": round(cpu, 1), "events_per_s": round(n / wall)}
    if ids["default"] != ids["two_workers"]:
        raise AssertionError(
            f"alert ids differ: {len(ids['default'])} default, {len(ids['two_workers'])} with two workers"
        )
    return {
        "events": n,
        "alerts": len(ids["default"]),
        "same_alert_ids": True,
        **runs,
        "two_workers_speedup": round(
            runs["two_workers"]["events_per_s"] / runs["default"]["events_per_s"], 3
        ),
    }


def memory_report(n: int, speedup_events: int) -> dict[str, Any]:
    from pipeline import state_size

    load_before = os.getloadavg()
    paths = {path: _child(path, n) for path in ("batch", "streaming")}
    plan = compile_correlations(RuleSet.load(__import__("pipeline").RULES))
    speed = two_workers(speedup_events)
    return {
        "events": n,
        "batch": paths["batch"],
        "streaming": paths["streaming"],
        "rss_growth": max(p["rss_growth"] for p in paths.values()),
        "state_100k_groups": state_size(plan, 100_000),
        "two_workers_speedup": speed.pop("two_workers_speedup"),
        "two_workers": speed,
        "cpus": len(os.sched_getaffinity(0)),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
