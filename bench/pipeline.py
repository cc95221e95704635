"""Pipeline throughput next to engine-only throughput, and correlation state size per active group.

    python bench/pipeline.py --json [--events 20000] [--rounds 5]

Both sides read the same generated audit log (a temporary file, one JSON Event a line) and decode it
the way `kubesigma run` does. Engine-only: read, decode, a freshly loaded rule set's `match`, the
plain-Python correlation replay, and the ECS documents of the single-event alerts (the pipeline's
work, without Beam; `engine_only_without_alerts` leaves the documents out). Batch: the Beam pipeline
(ReadAuditFiles → DecodeAudit → Detect → Correlate → candidates → alert documents) on FnApiRunner.
Streaming path: the same transforms plus suppression with streaming semantics on
BundleBasedDirectRunner. Batch without correlation: the same batch pipeline with no correlation rules
(where the time goes). Every run starts as a fresh worker (`as_fresh_worker`).
Each pipeline also runs over no events: "started" rates leave that start-up out, "started_cpu" counts CPU
seconds of this process instead of wall clock. Every figure is the best of --rounds. Results and what
limits them: docs/performance.md, "Pipeline (issue 6)".
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.transforms.window import TimestampedValue

from kubesigma.connectors.formats import DecodeContext, decode_record
from kubesigma.connectors.model import AuditEvent, RawRecord
from kubesigma.connectors.sources.files import ReadLimits, read_file
from kubesigma.detections.correlation import Contribution, CorrelationPlan, Correlator, compile_correlations
from kubesigma.detections.correlation.replay import replay
from kubesigma.detections.engine import RuleSet
from kubesigma.pipeline import transforms
from kubesigma.pipeline.alerts import candidate_alert, match_candidates
from kubesigma.pipeline.correlate import Correlate
from kubesigma.pipeline.decide import decide_alerts
from kubesigma.pipeline.transforms import DecodeAudit, Detect, ReadAuditFiles, settle_heap

ROOT = Path(__file__).resolve().parent.parent
RULES = [ROOT / "detections" / "rules", ROOT / "detections" / "correlation" / "rules"]
T0 = 1_795_860_000.0
SOFT_LIMIT = 1 << 20
EVENT_INTERVAL = 0.05  # seconds of event time between two events of the generated log


def write_log(path: Path, n: int, seed: int = 1) -> Path:
    """An audit log of `n` events, as kube-apiserver writes it (one JSON Event a line)."""
    with path.open("wb") as out:
        for doc in iter_docs(n, seed):
            out.write(orjson.dumps(doc) + b"\n")
    return path


def iter_docs(n: int, seed: int = 1, start: int = 0) -> Iterator[dict[str, Any]]:
    """A cluster's mix: mostly reads by service accounts, some secret reads, denials, execs, bindings.
    Events `start` to `start + n` of one log (each slice its own random stream, times continue)."""
    rng = random.Random(seed * 1_000_003 + start if start else seed)
    users = [f"system:serviceaccount:ns{i}:app" for i in range(40)] + [
        f"user{i}@example.com" for i in range(20)
    ]
    for i in range(start, start + n):
        r = rng.random()
        user = rng.choice(users)
        verb, resource, sub, decision, code = "get", "configmaps", None, "allow", 200
        if r < 0.1:
            resource = "secrets"
        elif r < 0.15:
            decision, code, resource = "forbid", 403, "pods"
        elif r < 0.17:
            verb, resource, sub = "create", "pods", "exec"
        elif r < 0.4:
            verb, resource = "list", "pods"
        doc: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": f"{seed:04x}{i:012x}-0000-4000-8000-000000000000",
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/ns{i % 7}/{resource}/obj-{rng.randrange(50)}",
            "verb": verb,
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": [f"10.0.{users.index(user) % 5}.{users.index(user)}"],  # an address per identity
            "userAgent": "kubectl/v1.29.4",
            "objectRef": {
                "resource": resource,
                "namespace": f"ns{i % 7}",
                "name": f"obj-{rng.randrange(50)}",
            },
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": _iso(T0 + i * EVENT_INTERVAL),
            "stageTimestamp": _iso(T0 + i * EVENT_INTERVAL + 0.002),
            "annotations": {"authorization.k8s.io/decision": decision},
        }
        if sub:
            doc["objectRef"]["subresource"] = sub
        yield doc


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """Wall-clock and CPU seconds (this process, every thread: the runners here run in-process) of a
    block. CPU time is what a busy shared machine disturbs least; wall clock is what a user waits."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def as_fresh_worker() -> None:
    """Each run starts as a new worker process would: rules compiled anew (the compiled set is kept per
    process) and the heap settled once they are (which a worker does once per process)."""
    transforms._compiled_rules.cache_clear()
    transforms._settled = False


def read_events(log: Path) -> Iterator[AuditEvent]:
    """The log's lines read and decoded the way `kubesigma run` does it, without Beam, one at a time."""
    context = DecodeContext()
    return (
        event
        for record in read_file(str(log))
        if isinstance(record, RawRecord)
        for event in decode_record(record, context)
        if type(event) is AuditEvent
    )


class AlertingRules:
    """A rule set as the replay calls it, which also builds the ECS document of every match that alerts
    on its own, as the pipeline does. The pipeline's correlation alerts (7% of its documents here) are
    left out: building them would mean keeping every event until the replay ends."""

    def __init__(self, ruleset: RuleSet, plan: Any) -> None:
        self.ruleset, self.plan, self.documents = ruleset, plan, 0

    def match(self, event: AuditEvent) -> list[Any]:
        rules = self.ruleset.match(event)
        if rules:
            for stamped in match_candidates([(rule, event) for rule in rules], self.plan):
                candidate_alert(stamped.value, self.plan, SOFT_LIMIT)
                self.documents += 1
        return rules


def engine_only(plan_of: Any, log: Path, *, alerts: bool = True) -> tuple[Clock, int]:
    """The log read and decoded, the rules (freshly loaded, so compiled on first sight as in a
    pipeline's worker), the correlation replay and (`alerts`) the single-event alert documents: the
    pipeline's work without Beam."""
    ruleset = RuleSet.load(RULES)
    plan = plan_of(ruleset)
    rules: Any = AlertingRules(ruleset, plan) if alerts else ruleset
    as_fresh_worker()
    settle_heap()  # as a pipeline worker does once its rules are loaded
    with Clock() as clock:
        firings = replay(rules, plan, read_events(log))
    return clock, len(firings)


def pipeline_run(ruleset: RuleSet, plan: Any, log: Path, *, streaming: bool) -> Clock:
    """One pipeline run over the log: read, decode, detect, correlate, alert documents."""
    options = PipelineOptions([])
    options.view_as(StandardOptions).runner = "BundleBasedDirectRunner" if streaming else "FnApiRunner"
    options.view_as(StandardOptions).streaming = streaming
    as_fresh_worker()
    with Clock() as clock, beam.Pipeline(options=options) as p:
        detection_graph(p | ReadAuditFiles([str(log)], ReadLimits()), ruleset, plan, streaming=streaming)
    return clock


def detection_graph(records: Any, ruleset: RuleSet, plan: Any, *, streaming: bool) -> Any:
    """Batches of raw records → decode, detect, correlate, alert documents (their sizes), as `kubesigma
    run` lays them out (one alert per rule and request; suppression in a stream)."""
    events = (records | DecodeAudit()).events
    if streaming:  # event time, as a streaming source stamps it
        events = events | beam.Map(lambda batch: TimestampedValue(batch, batch[0].time))
    matches = events | Detect(ruleset)
    hits = matches | Correlate(plan, 120.0)
    documents = decide_alerts(matches, hits, plan, SOFT_LIMIT, 600.0 if streaming else None)
    return documents | beam.Flatten() | beam.Map(len)


class Rates:
    """A path's best of `rounds` runs over n events and over none (start-up: runner start, the rules
    compiled on the worker, teardown; a fixed cost per job)."""

    def __init__(
        self, ruleset: RuleSet, plan: Any, logs: tuple[Path, Path], n: int, rounds: int, *, streaming: bool
    ) -> None:
        log, empty_log = logs
        runs = [pipeline_run(ruleset, plan, log, streaming=streaming) for _ in range(rounds)]
        empty = [pipeline_run(ruleset, plan, empty_log, streaming=streaming) for _ in range(rounds)]
        self.n = n
        self.wall = min(r.wall for r in runs)
        self.cpu = min(r.cpu for r in runs)
        self.startup_wall = min(r.wall for r in empty)
        self.startup_cpu = min(r.cpu for r in empty)

    @property
    def whole(self) -> float:
        return self.n / self.wall

    @property
    def started(self) -> float:
        return self.n / max(self.wall - self.startup_wall, 1e-9)

    @property
    def started_cpu(self) -> float:
        return self.n / max(self.cpu - self.startup_cpu, 1e-9)


def state_size(plan: Any, groups: int) -> dict[str, float]:
    """Bytes of pickled correlation state with `groups` active groups of the secret-enumeration rule,
    each holding 5 distinct secret reads (below its threshold of 10, so nothing fires and resets)."""
    spec = next(s for s in plan.specs if s.type == "value_count")
    correlator = Correlator(spec)
    for g in range(groups):
        for k in range(5):
            correlator.add((f"user{g}",), Contribution(T0 + k, f"{g}-{k}", 0, f"secret-{k}", f"{g}-{k}"))
    size = len(pickle.dumps(correlator.windows))
    return {
        "groups": groups,
        "events_held": correlator.state_size(),
        "bytes": size,
        "bytes_per_group": size / groups,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--events", type=int, default=None, help="20,000; with --memory 2,000,000")
    parser.add_argument("--rounds", type=int, default=5, help="best of this many runs per measurement")
    parser.add_argument("--memory", action="store_true", help="peak RSS over a long input, and two workers")
    parser.add_argument(
        "--speedup-events", type=int, default=1_000_000, help="--memory: input of the speedup"
    )
    parser.add_argument("--memory-child", choices=("batch", "streaming"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        from memory import memory_run

        print(orjson.dumps(memory_run(args.memory_child, args.events)).decode())
        return 0
    if args.memory:
        from memory import memory_report

        result = memory_report(args.events or 2_000_000, args.speedup_events)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if args.json else result)
        return 0
    args.events = args.events or 20_000
    ruleset = RuleSet.load(RULES)
    plan = compile_correlations(ruleset)
    with tempfile.TemporaryDirectory(prefix="kubesigma-bench-") as tmp:
        logs = write_log(Path(tmp, "audit.log"), args.events), write_log(Path(tmp, "empty.log"), 0)
        engines = [engine_only(compile_correlations, logs[0]) for _ in range(args.rounds)]
        matching = [engine_only(compile_correlations, logs[0], alerts=False) for _ in range(args.rounds)]
        n, rounds = args.events, args.rounds
        batch = Rates(ruleset, plan, logs, n, rounds, streaming=False)
        # Same rules and silencing, no correlation stage: what the correlation stage costs.
        no_correlation = CorrelationPlan(infos=plan.infos, silenced=plan.silenced)
        detect_only = Rates(ruleset, no_correlation, logs, n, rounds, streaming=False)
        stream = Rates(ruleset, plan, logs, n, rounds, streaming=True)
    firings = engines[0][1]
    engine_wall = n / min(c.wall for c, _ in engines)
    engine_cpu = n / min(c.cpu for c, _ in engines)
    paths = {"batch_fnapi": batch, "streaming_bundlebased": stream, "batch_without_correlation": detect_only}
    result: dict[str, Any] = {
        "events": n,
        "rules": len(ruleset.rules),
        "correlation_rules": len(plan.specs),
        "correlation_firings": firings,
        "rounds": rounds,
        "engine_only_events_per_s": round(engine_wall),
        # The engine without the alert documents (the definition before 2026-11-29): for comparison.
        "engine_only_without_alerts_events_per_s": round(n / min(c.wall for c, _ in matching)),
    }
    # Whole runs, start-up included (wall clock).
    for name, r in paths.items():
        result[f"{name}_events_per_s"] = round(r.whole)
    for name, r in paths.items():
        result[f"{name}_over_engine"] = round(r.whole / engine_wall, 3)
    result["startup_s"] = {name: round(r.startup_wall, 2) for name, r in paths.items()}
    # Once started: a run minus the same graph over no events (the throughput of a long job).
    result["started"] = {
        **{f"{name}_events_per_s": round(r.started) for name, r in paths.items()},
        **{f"{name}_over_engine": round(r.started / engine_wall, 3) for name, r in paths.items()},
    }
    # The same in CPU seconds of this process (every runner here runs in it): steadier on a busy machine.
    result["started_cpu"] = {
        "engine_only_events_per_s": round(engine_cpu),
        **{f"{name}_events_per_s": round(r.started_cpu) for name, r in paths.items()},
        **{f"{name}_over_engine": round(r.started_cpu / engine_cpu, 3) for name, r in paths.items()},
    }
    result["state"] = [state_size(plan, g) for g in (100, 1_000, 10_000)]
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
