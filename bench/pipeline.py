"""Pipeline throughput next to engine-only throughput, and correlation state size per active group.

    python bench/pipeline.py --json [--events 20000]

Engine-only: the rule set's `match` over decoded events plus the plain-Python correlation replay.
Batch: the Beam pipeline (Detect → Correlate → candidates → alert documents) on FnApiRunner.
Streaming path: the same transforms plus suppression with streaming semantics on BundleBasedDirectRunner.
Batch without correlation: the same batch pipeline with no correlation rules (where the time goes).
Events are generated inside the pipeline (beam.Create of a big list would measure pickling).
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from pathlib import Path
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from kubesigma.connectors.event import AuditEvent, RawRecord, Source
from kubesigma.connectors.formats import decode_record
from kubesigma.detections.correlation import Contribution, CorrelationPlan, Correlator, compile_correlations
from kubesigma.detections.correlation.replay import replay
from kubesigma.detections.engine import RuleSet
from kubesigma.pipeline.streaming import CandidateAlerts, Correlate, Suppress, ToCandidates
from kubesigma.pipeline.transforms import Detect

ROOT = Path(__file__).resolve().parent.parent
RULES = [ROOT / "detections" / "rules", ROOT / "detections" / "correlation" / "rules"]
T0 = 1_795_860_000.0
BATCH = 500


def make_events(n: int, seed: int = 1) -> list[AuditEvent]:
    """A cluster's mix: mostly reads by service accounts, some secret reads, denials, execs, bindings."""
    rng = random.Random(seed)
    users = [f"system:serviceaccount:ns{i}:app" for i in range(40)] + [
        f"user{i}@example.com" for i in range(20)
    ]
    out = []
    for i in range(n):
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
            "requestReceivedTimestamp": _iso(T0 + i * 0.05),
            "stageTimestamp": _iso(T0 + i * 0.05 + 0.002),
            "annotations": {"authorization.k8s.io/decision": decision},
        }
        if sub:
            doc["objectRef"]["subresource"] = sub
        (event,) = decode_record(RawRecord(orjson.dumps(doc), Source("bench://audit.log", line=i + 1)))
        out.append(event)
    return out


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def engine_only(ruleset: RuleSet, plan: Any, events: list[AuditEvent]) -> tuple[float, int]:
    start = time.perf_counter()
    firings = replay(ruleset, plan, events)
    return len(events) / (time.perf_counter() - start), len(firings)


def pipeline_seconds(ruleset: RuleSet, plan: Any, n: int, *, streaming: bool) -> float:
    """Wall-clock seconds of one pipeline run over `n` generated events, generation excluded."""
    options = PipelineOptions([])
    options.view_as(StandardOptions).runner = "BundleBasedDirectRunner" if streaming else "FnApiRunner"
    options.view_as(StandardOptions).streaming = streaming

    def generate(seed: int):
        events = make_events(n, seed)
        for i in range(0, len(events), BATCH):
            batch = events[i : i + BATCH]
            yield beam.window.TimestampedValue(batch, batch[0].time)

    start = time.perf_counter()
    with beam.Pipeline(options=options) as p:
        matches = p | beam.Create([1]) | beam.FlatMap(generate) | Detect(ruleset)
        hits = matches | Correlate(plan, 120.0)
        candidates = (matches, hits) | ToCandidates(plan)
        if streaming:
            candidates = candidates | Suppress(600.0)
        _ = candidates | CandidateAlerts(1 << 20, plan) | beam.Map(len)
    elapsed = time.perf_counter() - start
    # The generator's own cost (decode included) is paid in the pipeline; subtract it like for like.
    gen_start = time.perf_counter()
    make_events(n, 1)
    gen = time.perf_counter() - gen_start
    return max(elapsed - gen, 1e-9)


def pipeline_rates(ruleset: RuleSet, plan: Any, n: int, *, streaming: bool) -> tuple[float, float, float]:
    """(events/s of the whole run, events/s once started, start-up seconds). Start-up: the same graph
    over no events (runner start, rule compilation on the worker, teardown), a cost paid once per job."""
    startup = pipeline_seconds(ruleset, plan, 0, streaming=streaming)
    total = pipeline_seconds(ruleset, plan, n, streaming=streaming)
    return n / total, n / max(total - startup, 1e-9), startup


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
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    ruleset = RuleSet.load(RULES)
    plan = compile_correlations(ruleset)
    events = make_events(args.events)
    engine, firings = engine_only(ruleset, plan, events)
    batch, batch_run, batch_start = pipeline_rates(ruleset, plan, args.events, streaming=False)
    # Same rules and silencing, no correlation stage: what the correlation stage costs.
    no_correlation = CorrelationPlan(infos=plan.infos, silenced=plan.silenced)
    detect_only, detect_only_run, _ = pipeline_rates(ruleset, no_correlation, args.events, streaming=False)
    stream, stream_run, stream_start = pipeline_rates(ruleset, plan, args.events, streaming=True)
    result = {
        "events": args.events,
        "rules": len(ruleset.rules),
        "correlation_rules": len(plan.specs),
        "correlation_firings": firings,
        "engine_only_events_per_s": round(engine),
        "batch_fnapi_events_per_s": round(batch),
        "streaming_bundlebased_events_per_s": round(stream),
        "batch_without_correlation_events_per_s": round(detect_only),
        "batch_over_engine": round(batch / engine, 3),
        "streaming_over_engine": round(stream / engine, 3),
        "batch_without_correlation_over_engine": round(detect_only / engine, 3),
        # Once started: the run minus the same graph over no events (a fixed cost per job).
        "batch_startup_s": round(batch_start, 2),
        "streaming_startup_s": round(stream_start, 2),
        "batch_fnapi_started_events_per_s": round(batch_run),
        "streaming_bundlebased_started_events_per_s": round(stream_run),
        "batch_without_correlation_started_events_per_s": round(detect_only_run),
        "batch_started_over_engine": round(batch_run / engine, 3),
        "streaming_started_over_engine": round(stream_run / engine, 3),
        "batch_without_correlation_started_over_engine": round(detect_only_run / engine, 3),
        "state": [state_size(plan, g) for g in (100, 1_000, 10_000)],
    }
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
