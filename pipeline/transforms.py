"""The first stages of the Beam graph as composite transforms that read like the data's path:

    files | ReadAuditFiles() | DecodeAudit() | Detect(rules) → batches of (rule, event) matches

(then correlate.py, alerts.py, suppress.py, and the sinks in connectors/sinks/).

DoFns work on batches of records (per-element overhead dominates otherwise) and set up expensive
things (the compiled rule set) once per worker in `setup`. Dead letters leave every stage as a tagged
output next to the main one, never as exceptions.
"""

from __future__ import annotations

import functools
import gc
import pickle
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from kubesigma.connectors.formats import DecodeContext, decode_carried
from kubesigma.connectors.model import AuditEvent, DeadLetter, RawRecord, RuleInfo, Skipped
from kubesigma.connectors.model import coders as _coders  # noqa: F401  (registers the model's coders)
from kubesigma.connectors.model.records import RecordBatch
from kubesigma.connectors.sources import RECORD_BATCH
from kubesigma.connectors.sources.files import ReadLimits, read_file
from kubesigma.pipeline.metrics import NAMESPACE, RULE_HITS

DEAD_LETTER = "dead_letter"
# What Detect emits, in batches: a rule and an event it matched.
Match = tuple[RuleInfo, AuditEvent]


class Counters:
    """The run's counters as Beam metrics; read = normalized + dead_lettered + skipped."""

    def __init__(self) -> None:
        self.read = Metrics.counter(NAMESPACE, "read")
        self.normalized = Metrics.counter(NAMESPACE, "normalized")
        self.dead_lettered = Metrics.counter(NAMESPACE, "dead_lettered")
        self.skipped = Metrics.counter(NAMESPACE, "skipped")
        self.truncated = Metrics.counter(NAMESPACE, "truncated")


class _ReadFile(beam.DoFn):
    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits

    def process(self, path: str) -> Iterator[RecordBatch]:
        return record_batches(read_file(path, self.limits))


def record_batches(items: Iterable[RawRecord | DeadLetter]) -> Iterator[RecordBatch]:
    """Records as they are read, in batches (Beam's cost per element is paid per batch)."""
    batch = RecordBatch()
    for item in items:
        batch.append(item)
        if len(batch) >= RECORD_BATCH:
            yield batch
            batch = RecordBatch()
    if batch:
        yield batch


class ReadAuditFiles(beam.PTransform):
    """Batches of raw records (or read failures) from files; each file is read by one worker."""

    def __init__(self, paths: Sequence[str], limits: ReadLimits) -> None:
        super().__init__()
        self.paths = list(paths)
        self.limits = limits

    def expand(self, pbegin: pvalue.PBegin) -> pvalue.PCollection:
        paths = pbegin | "Files" >> beam.Create(self.paths)
        if len(self.paths) > 1:
            # Files to several workers; one file is read where it is listed (a Reshuffle is five more
            # steps, each paid for at start-up).
            paths = paths | "Spread" >> beam.Reshuffle()
        return paths | "Read" >> beam.ParDo(_ReadFile(self.limits)).with_output_types(RecordBatch)


class _Decode(beam.DoFn):
    def __init__(self, cluster: str | None) -> None:
        self.cluster = cluster

    def setup(self) -> None:
        self.context = DecodeContext(cluster=self.cluster)
        self.counters = Counters()

    def process(self, batch: list[RawRecord | DeadLetter]) -> Iterator[Any]:
        events: list[AuditEvent] = []
        read = normalized = dead = skipped = truncated = 0
        for item in batch:
            outcomes: Iterable[AuditEvent | DeadLetter | Skipped]
            outcomes = (item,) if isinstance(item, DeadLetter) else decode_carried(item, self.context)
            for outcome in outcomes:
                read += 1
                if type(outcome) is AuditEvent:  # `type() is`: cheaper than isinstance, and mypy narrows it
                    normalized += 1
                    truncated += outcome.truncated
                    events.append(outcome)
                elif type(outcome) is DeadLetter:
                    dead += 1
                    yield pvalue.TaggedOutput(DEAD_LETTER, outcome)
                else:
                    skipped += 1
        c = self.counters
        c.read.inc(read)
        c.normalized.inc(normalized)
        c.dead_lettered.inc(dead)
        c.skipped.inc(skipped)
        if truncated:
            c.truncated.inc(truncated)
        if events:
            yield events


class DecodeAudit(beam.PTransform):
    """Raw records → batches of normalized `AuditEvent`s; refusals to the `dead_letter` output."""

    def __init__(self, cluster: str | None = None) -> None:
        super().__init__()
        self.cluster = cluster

    def expand(self, batches: pvalue.PCollection) -> pvalue.DoOutputsTuple:
        decode = beam.ParDo(_Decode(self.cluster)).with_output_types(list[AuditEvent])
        return batches | "Decode" >> decode.with_outputs(DEAD_LETTER, main="events")


@functools.lru_cache(maxsize=8)
def _compiled_rules(packed: bytes, thread: int) -> Any:
    # Unpickling a RuleSet compiles it (~0.4 s for the shipped pack). Beam deserializes a DoFn once at
    # construction and again for every bundle processor of its stage; one compiled copy per worker
    # thread (rule sets compile lazily and are not shared across threads) serves them all.
    rules = pickle.loads(packed)
    settle_heap()
    return rules


_settle_lock = threading.Lock()
_settled = False


def settle_heap() -> None:
    """Leave what a worker has loaded by now (modules, the first compiled rule set) out of garbage
    collection: it lives as long as the worker, and every full collection walked all of it again (in
    `bench/pipeline.py`, full collections took about a fifth of a batch run's time). Once per process:
    a frozen object is never collected, so freezing again later would keep whatever became garbage
    since (rule sets compiled for other threads, finished bundles) for good. Garbage is collected first,
    so only what is alive at that moment is kept.

    The youngest generation is collected every `YOUNG_COLLECTION` allocations instead of 700: a batch
    of parsed records (a few hundred, tens of objects each) is alive while it is decoded and matched,
    so at 700 every young collection found it alive and moved it to older generations, to be walked
    again there (about 6% of the instructions per event of a batch run, measured with cachegrind)."""
    global _settled
    with _settle_lock:
        if _settled:
            return
        _settled = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


# Allocations between collections of the youngest generation: more than a batch of records holds.
YOUNG_COLLECTION = 50_000


class _Detect(beam.DoFn):
    def __init__(self, rules: Any) -> None:
        # A RuleSet's sources (or those bytes already: a --workers worker gets them so).
        self.packed = (
            rules if isinstance(rules, bytes) else pickle.dumps(rules, protocol=pickle.HIGHEST_PROTOCOL)
        )

    def setup(self) -> None:
        self.rules = _compiled_rules(self.packed, threading.get_ident())
        self.hits = {rule.id: Metrics.counter(RULE_HITS, rule.id) for rule in self.rules.rules}

    def process(self, events: list[AuditEvent]) -> Iterator[TimestampedValue]:
        matches: list[Match] = []
        for event, matched in zip(events, self.rules.match_batch(events), strict=True):
            for rule in matched:
                matches.append((rule, event))
        if not matches:
            return
        counts: dict[str, int] = {}
        for rule, _ in matches:
            counts[rule.id] = counts.get(rule.id, 0) + 1
        for rule_id, n in counts.items():
            self.hits[rule_id].inc(n)
        # Stamped with the earliest event of the batch: a later stage holds no watermark it should not.
        yield TimestampedValue(matches, min(event.time for _, event in matches))


class Detect(beam.PTransform):
    """Batches of events → batches of (rule, event) matches, one per rule that fires on an event.

    Matches travel in batches: Beam's cost per element (several microseconds per step) would otherwise
    exceed the rules' own cost. Each batch is stamped with its earliest event time."""

    def __init__(self, rules: Any) -> None:
        super().__init__()
        self.rules = rules

    def expand(self, events: pvalue.PCollection) -> pvalue.PCollection:
        return events | "Match" >> beam.ParDo(_Detect(self.rules)).with_output_types(list[Match])


class _InTimeRange(beam.DoFn):
    def __init__(self, since: float | None, until: float | None) -> None:
        self.since = float("-inf") if since is None else since
        self.until = float("inf") if until is None else until

    def setup(self) -> None:
        self.outside = Metrics.counter(NAMESPACE, "outside_time_range")

    def process(self, events: list[AuditEvent]) -> Iterator[list[AuditEvent]]:
        since, until = self.since, self.until
        kept = [e for e in events if since <= e.time < until]
        if len(kept) < len(events):
            self.outside.inc(len(events) - len(kept))
        if kept:
            yield kept


class InTimeRange(beam.PTransform):
    """Batches of events whose event time is in [since, until) (`--since`/`--until` of a replay); the
    others are counted (`outside_time_range`), not dead-lettered: they are fine, just not asked for."""

    def __init__(self, since: float | None, until: float | None) -> None:
        super().__init__()
        self.since = since
        self.until = until

    def expand(self, events: pvalue.PCollection) -> pvalue.PCollection:
        keep = beam.ParDo(_InTimeRange(self.since, self.until)).with_output_types(list[AuditEvent])
        return events | "InTimeRange" >> keep
