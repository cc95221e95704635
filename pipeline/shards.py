"""`kubesigma run --workers N`: the per-event stages (read, decode, detect) in N worker processes.

    ShardedDetect(parts, ...) → batches of (rule, event) matches, and dead letters

Beam's local runners run a Python job on one core. Reading, decoding and matching are most of a batch
job's work and need nothing from other events, so each worker process runs them (the same transforms,
on FnApiRunner) over its share of the input: whole files, and byte ranges of large JSON-lines files
(connectors/sources/ranges.py). Workers send their matches back; everything after Detect (correlation,
one alert per request, suppression, the documents) runs once over all of them in the job, so
correlations across shards and the alerts are the same as with one worker.

Between a worker and the job, frames on the worker's stdout: a kind byte, a length, a pickle. Match
batches travel as (rule id, frozen event) pairs; the job reads at most a few batches ahead of what it
has processed (a bounded queue), so a fast worker waits rather than fill the job's memory.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from kubesigma.connectors.model import AuditEvent, RuleInfo
from kubesigma.connectors.model.event import event_from_bytes, event_to_bytes
from kubesigma.connectors.model.records import RecordBatch
from kubesigma.connectors.sources.files import ReadLimits
from kubesigma.connectors.sources.ranges import InputPart
from kubesigma.detections.correlation import CorrelationPlan
from kubesigma.pipeline.correlate import RouteMatches
from kubesigma.pipeline.metrics import NAMESPACE, RULE_HITS
from kubesigma.pipeline.transforms import DEAD_LETTER, DecodeAudit, Detect, Match, record_batches

_HEADER = struct.Struct(">cI")
MATCHES, ROUTED, DEAD, COUNTERS = b"M", b"R", b"D", b"C"
_FRAME_BYTES = 256 * 1024
_AHEAD = 16  # frames the job holds from its workers before they wait


def write_frame(out: IO[bytes], kind: bytes, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(kind, len(payload)) + payload)


def read_frames(stream: IO[bytes]) -> Iterator[tuple[bytes, Any]]:
    while header := stream.read(_HEADER.size):
        kind, length = _HEADER.unpack(header)
        yield kind, pickle.loads(stream.read(length))


# -- in a worker process ----------------------------------------------------------------------------


class _ReadParts(beam.DoFn):
    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits

    def process(self, part: InputPart) -> Iterator[RecordBatch]:
        return record_batches(part.read(self.limits))


class _Send(beam.DoFn):
    """Frames to the job on this process's stdout (one writer at a time), a few hundred KiB each."""

    def __init__(self, kind: bytes, level: int = 0) -> None:
        self.kind = kind
        self.level = level

    def start_bundle(self) -> None:
        self.pending: list[Any] = []
        self.size = 0

    def process(self, element: Any, ts: Any = beam.DoFn.TimestampParam) -> None:
        if self.kind == MATCHES:  # single-event alerts to be: few, sent as they come
            element = [(rule.id, event_to_bytes(event)) for rule, event in element]
            self._write(element)
            return
        if self.kind == ROUTED:  # (key, (opens, count, pack)) with its earliest event time
            key, routed = element
            self.pending.append((key, routed, ts.micros))
            self.size += len(routed[2])
        else:
            self.pending.append(element)
            self.size += 1000
        if self.size >= _FRAME_BYTES:
            self.finish_bundle()

    def finish_bundle(self) -> None:
        if self.pending:
            self._write((self.level, self.pending))
            self.pending, self.size = [], 0

    def _write(self, value: Any) -> None:
        with _send_lock:
            write_frame(_frames_out, self.kind, value)


_send_lock = threading.Lock()
# A worker's frames: its stdout, taken by `worker_main` (not read at import: the job imports this module
# wherever its stdout is, a test's capture included, which has no byte buffer).
_frames_out: IO[bytes] = None  # type: ignore[assignment]


def _own_stdout() -> IO[bytes]:
    """The frames get the process's stdout to themselves: whatever else prints goes to stderr."""
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return frames


def _alerting_alone(matches: list[Match], alerts_alone: Any) -> list[Match]:
    """The matches that become alerts by themselves; the rest only count towards correlations."""
    return [m for m in matches if alerts_alone(m[0].id)]


def worker_main(spec_path: str) -> int:
    """One worker: its parts read, decoded and matched on FnApiRunner; frames out; counters last."""
    global _frames_out
    _frames_out = _own_stdout()
    with open(spec_path, "rb") as handle:
        spec = pickle.load(handle)
    options = PipelineOptions([])
    options.view_as(StandardOptions).runner = "FnApiRunner"
    pipeline = beam.Pipeline(options=options)
    decoded = (
        pipeline
        | "Parts" >> beam.Create(spec["parts"])
        | "Read" >> beam.ParDo(_ReadParts(spec["limits"])).with_output_types(RecordBatch)
        | "DecodeAudit" >> DecodeAudit(spec["cluster"])
    )
    plan = spec["plan"]
    matches = decoded.events | "Detect" >> Detect(spec["rules"])  # compiled once, where it matches
    alone = matches | "Alone" >> beam.Map(_alerting_alone, plan.alerts_alone) | beam.Filter(bool)
    _ = alone | "SendMatches" >> beam.ParDo(_Send(MATCHES))
    for level in range(plan.levels):
        routed = matches | f"Route{level}" >> RouteMatches(plan, level)
        _ = routed | f"SendRouted{level}" >> beam.ParDo(_Send(ROUTED, level))
    _ = decoded.dead_letter | "SendDead" >> beam.ParDo(_Send(DEAD))
    result = pipeline.run()
    result.wait_until_finish()
    counts: dict[tuple[str, str], int] = {}
    for metric in result.metrics().query(MetricsFilter())["counters"]:
        key = (metric.key.metric.namespace, metric.key.metric.name)
        value = metric.committed if metric.committed is not None else metric.attempted
        counts[key] = counts.get(key, 0) + value
    write_frame(_frames_out, COUNTERS, counts)
    _frames_out.close()
    return 0


# -- in the job ---------------------------------------------------------------------------------------


class _Worker:
    """A worker process and the thread that moves its frames to the job's queue."""

    def __init__(self, index: int, spec: dict[str, Any], frames: queue.Queue[Any], tmp: str) -> None:
        self.index = index
        spec_path = os.path.join(tmp, f"worker-{index}.spec")
        with open(spec_path, "wb") as handle:
            pickle.dump(spec, handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.stderr = open(os.path.join(tmp, f"worker-{index}.log"), "w+b")  # noqa: SIM115 (closed in wait)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kubesigma.pipeline.shards", spec_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.frames = frames
        self.thread = threading.Thread(target=self._pump, name=f"kubesigma-worker-{index}", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        try:
            for frame in read_frames(self.process.stdout):
                self.frames.put(frame)
        finally:
            self.frames.put((None, self))

    def wait(self) -> None:
        code = self.process.wait()
        self.stderr.seek(0)
        log = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        self.stderr.close()
        if code != 0:
            last = log[-1] if log else "no output"
            raise RuntimeError(f"--workers: worker {self.index} failed (exit code {code}): {last}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class _RunWorkers(beam.DoFn):
    """Starts the workers, and hands on their matches and dead letters as they come, and their counters."""

    def __init__(
        self,
        rules: Any,
        plan: CorrelationPlan,
        shares: list[list[InputPart]],
        limits: ReadLimits,
        cluster: str | None,
    ) -> None:
        # The rule set's sources, pickled once: the job never matches, and a RuleSet compiles itself
        # again whenever it is unpickled (here, for every bundle processor of this stage).
        self.rules = pickle.dumps(rules, protocol=pickle.HIGHEST_PROTOCOL)
        self.by_id: dict[str, RuleInfo] = {rule.id: rule for rule in rules.rules}
        self.plan = plan
        self.shares = [share for share in shares if share]
        self.limits = limits
        self.cluster = cluster

    def process(self, _: Any) -> Iterator[Any]:
        frames: queue.Queue[Any] = queue.Queue(maxsize=_AHEAD * len(self.shares))
        with tempfile.TemporaryDirectory(prefix="kubesigma-workers-") as tmp:
            workers = [
                _Worker(
                    i,
                    {
                        "parts": share,
                        "limits": self.limits,
                        "cluster": self.cluster,
                        "rules": self.rules,
                        "plan": self.plan,
                    },
                    frames,
                    tmp,
                )
                for i, share in enumerate(self.shares)
            ]
            try:
                yield from self._receive(frames, len(workers))
                for worker in workers:
                    worker.wait()
            finally:
                for worker in workers:
                    worker.stop()

    def _receive(self, frames: queue.Queue[Any], running: int) -> Iterator[Any]:
        by_id = self.by_id
        thaw = event_from_bytes
        while running:
            kind, value = frames.get()
            if kind == ROUTED:
                level, routed = value
                tag = routed_tag(level)
                for key, packed, micros in routed:
                    yield pvalue.TaggedOutput(tag, TimestampedValue((key, packed), Timestamp(micros=micros)))
            elif kind == MATCHES:
                matches: list[Match] = [(by_id[rule_id], thaw(event)) for rule_id, event in value]
                yield TimestampedValue(matches, min(event.time for _, event in matches))
            elif kind == DEAD:
                for dead in value[1]:
                    yield pvalue.TaggedOutput(DEAD_LETTER, dead)
            elif kind == COUNTERS:
                for (namespace, name), count in value.items():
                    if namespace in (NAMESPACE, RULE_HITS) and count:
                        Metrics.counter(namespace, name).inc(count)
            else:  # a worker's stream ended
                running -= 1


def routed_tag(level: int) -> str:
    return f"routed{level}"


class ShardedDetect(beam.PTransform):
    """Input shares → what the job needs of each event, read, decoded, matched and routed to correlations
    in one worker process per share: `matches` (of rules that alert alone), `routed{level}` (keyed
    contributions per correlation level, for `CorrelateRouted`) and `dead_letter`. The job's counters
    include the workers'."""

    def __init__(
        self,
        rules: Any,
        plan: CorrelationPlan,
        shares: Sequence[list[InputPart]],
        limits: ReadLimits,
        cluster: str | None,
    ) -> None:
        super().__init__()
        self.levels = plan.levels
        self.run_workers = _RunWorkers(rules, plan, list(shares), limits, cluster)

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.DoOutputsTuple:
        tags = [routed_tag(level) for level in range(self.levels)]
        return (
            pbegin
            | "Start" >> beam.Create([None])
            | "Workers"
            >> beam.ParDo(self.run_workers)
            .with_output_types(list[tuple[RuleInfo, AuditEvent]])
            .with_outputs(DEAD_LETTER, *tags, main="matches")
        )


if __name__ == "__main__":
    # Through the module's import name: Beam pickles the DoFns by reference, which `__main__` is not.
    from kubesigma.pipeline.shards import worker_main as _worker_main

    sys.exit(_worker_main(sys.argv[1]))
