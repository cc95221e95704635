"""Elasticsearch indexing benchmark: alerts/s written by kubesigma's sink against the real cluster, next
to a plain `elasticsearch.helpers.bulk` loop on the same documents in the same run.

Run `make es-up`, then `python bench/elasticsearch.py --json` (`--quick` for a smoke run). Measured:
* helpers.bulk: the client's own helper, `create` ops, chunks of 500, no retries: the baseline.
* kubesigma BulkWriter: our batching, orjson encoding, per-item outcome handling, in plain Python.
* kubesigma on Beam: the same writer inside `WriteToElasticsearch` on FnApiRunner. Documents are
  generated inside the pipeline (Beam's Create would serialize them all); the time that generation
  takes outside Beam is subtracted, and the gross rate is reported too.
Each measurement writes into its own fresh indices, which are deleted afterwards. The human-readable
lines come first; the last line is one JSON object with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

# This script is named like the client package it benchmarks: keep its own folder off the import path,
# or `import elasticsearch` would import this file.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from kubesigma.connectors.model.alert import (  # noqa: E402
    Alert,
    ClusterFields,
    EventFields,
    KubesigmaFields,
    OrchestratorFields,
    RuleFields,
    SourceFields,
    UserFields,
    alert_id,
)

ES_URL = os.environ.get("KUBESIGMA_ES_URL", "http://127.0.0.1:9200")
VERBS = ("get", "list", "create", "patch", "delete", "watch")
RESOURCES = ("pods", "secrets", "configmaps", "deployments", "clusterrolebindings", "serviceaccounts")


def make_alerts(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Alert documents of realistic size (~2 KB): a pod-creating audit Event with annotations and a
    request object, spread over three days and eight rules."""
    rng = random.Random(seed)
    docs = []
    base = 1_764_000_000
    for i in range(count):
        verb, resource = rng.choice(VERBS), rng.choice(RESOURCES)
        namespace = f"team-{rng.randrange(20)}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + rng.randrange(3 * 86400)))
        stamp += f".{rng.randrange(1_000_000):06d}Z"
        audit_id = str(uuid.UUID(int=rng.getrandbits(128)))
        user = rng.choice(("system:anonymous", "alice@example.com", f"system:serviceaccount:{namespace}:ci"))
        event = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "RequestResponse",
            "auditID": audit_id,
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/{namespace}/{resource}",
            "verb": verb,
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": [f"203.0.113.{rng.randrange(1, 255)}"],
            "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef0",
            "objectRef": {
                "resource": resource,
                "namespace": namespace,
                "name": f"obj-{i}",
                "apiVersion": "v1",
            },
            "responseStatus": {"metadata": {}, "code": 201},
            "requestObject": {
                "kind": "Pod",
                "metadata": {"name": f"obj-{i}", "labels": {"app.kubernetes.io/name": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.example/web:1.2.3",
                            "securityContext": {"privileged": i % 7 == 0},
                        }
                    ],
                    "volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}] if i % 5 == 0 else [],
                },
            },
            "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp,
            "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
        }
        rule = f"bench-rule-{i % 8}"
        docs.append(
            Alert(
                timestamp=stamp,
                event=EventFields(id=audit_id, severity=47, action=verb, provider="kubernetes"),
                rule=RuleFields(id=rule, name=f"Bench rule {i % 8}", level="medium"),
                user=UserFields(name=user),
                source=SourceFields(ip=event["sourceIPs"][0]),
                orchestrator=OrchestratorFields(cluster=ClusterFields(name="bench"), namespace=namespace),
                kubernetes={"audit": event},
                kubesigma=KubesigmaFields(alert_id=alert_id(rule, audit_id), logsource="kubernetes/audit"),
            ).to_json_dict()
        )
    return docs


def _cleanup(es: Any, prefix: str) -> None:
    found = es.indices.get(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    if found:
        es.indices.delete(index=",".join(found))
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-alerts")


def _count(es: Any, prefix: str) -> int:
    es.indices.refresh(index=f"{prefix}-alerts-*")
    return int(es.count(index=f"{prefix}-alerts-*")["count"])


def bench_helpers_bulk(es: Any, config: Any, docs: list[dict[str, Any]]) -> float:
    from elasticsearch import helpers

    from kubesigma.connectors.sinks import es_mapping

    prefix = config.index_prefix
    actions = (
        {
            "_op_type": "create",
            "_index": es_mapping.index_name(prefix, "alerts", d["@timestamp"]),
            "_id": d["kubesigma"]["alert_id"],
            "_source": d,
        }
        for d in docs
    )
    start = time.perf_counter()
    helpers.bulk(es, actions, chunk_size=500, max_retries=0, raise_on_error=True)
    return time.perf_counter() - start


def bench_writer(config: Any, docs: list[dict[str, Any]]) -> float:
    from kubesigma.connectors.sinks.elasticsearch import BulkWriter, bulk_item
    from kubesigma.connectors.sinks.es_config import make_client

    client = make_client(config)
    writer = BulkWriter(client, config)
    start = time.perf_counter()
    for i in range(0, len(docs), config.batch_size):
        items = [bulk_item(d, config.index_prefix, "alerts") for d in docs[i : i + config.batch_size]]
        outcome = writer.write(items)
        if outcome.failed:
            raise SystemExit(f"bench: {len(outcome.failed)} alerts failed: {outcome.failed[0][1]}")
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def bench_beam(config: Any, count: int) -> float:
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from kubesigma.connectors.sinks.elasticsearch import WriteToElasticsearch

    start = time.perf_counter()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        _ = (
            p
            | beam.Create([count])
            | "generate" >> beam.FlatMap(make_alerts)
            | WriteToElasticsearch(config, "alerts")
        )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="2,000 alerts: a smoke run")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    args = parser.parse_args(argv)
    count = 2_000 if args.quick else args.alerts

    from elasticsearch import Elasticsearch

    from kubesigma.connectors.sinks.es_config import ElasticsearchConfig
    from kubesigma.connectors.sinks.es_indices import install_templates

    es = Elasticsearch(ES_URL, request_timeout=120)
    try:
        version = es.info()["version"]["number"]
    except Exception as err:
        print(f"bench: Elasticsearch not reachable at {ES_URL} ({err}); run `make es-up`", file=sys.stderr)
        return 2
    start = time.perf_counter()
    docs = make_alerts(count)
    generation = time.perf_counter() - start  # the Beam run generates the same alerts inside the pipeline
    size = sum(len(json.dumps(d)) for d in docs) / len(docs)
    print(f"Elasticsearch {version} at {ES_URL}; {count} alerts of {size:.0f} bytes on average")

    # warm-up (discarded): the node's first bulk requests pay for JIT compilation and index creation
    warm = replace(ElasticsearchConfig(url=ES_URL, index_prefix=f"ksbench-warm-{uuid.uuid4().hex[:8]}"))
    try:
        install_templates(warm)
        bench_helpers_bulk(es, warm, docs[:1000])
    finally:
        _cleanup(es, warm.index_prefix)

    results: dict[str, Any] = {"alerts": count, "avg_doc_bytes": round(size), "es_version": version}
    runs = (
        ("helpers_bulk", lambda cfg: bench_helpers_bulk(es, cfg, docs)),
        ("kubesigma_writer", lambda cfg: bench_writer(cfg, docs)),
        ("kubesigma_beam", lambda cfg: bench_beam(cfg, count)),
    )
    for name, run in runs:
        prefix = f"ksbench-{uuid.uuid4().hex[:8]}"
        config = replace(ElasticsearchConfig(url=ES_URL, index_prefix=prefix), request_timeout=120.0)
        try:
            install_templates(config)
            elapsed = run(config)
            written = _count(es, prefix)
        finally:
            _cleanup(es, prefix)
        if written != count:
            print(f"bench: {name} left {written} documents for {count} alerts", file=sys.stderr)
            return 1
        if name == "kubesigma_beam":
            results["kubesigma_beam_gross_alerts_per_s"] = round(count / elapsed)
            print(f"  {name:18s} {elapsed:7.2f} s  (of which ~{generation:.2f} s generating the alerts)")
            elapsed -= generation
        rate = count / elapsed
        results[f"{name}_alerts_per_s"] = round(rate)
        print(f"  {name:18s} {elapsed:7.2f} s  {rate:9.0f} alerts/s")
    base = results["helpers_bulk_alerts_per_s"]
    results["writer_vs_helpers_bulk"] = round(results["kubesigma_writer_alerts_per_s"] / base, 2)
    results["beam_vs_helpers_bulk"] = round(results["kubesigma_beam_alerts_per_s"] / base, 2)
    print(
        f"  kubesigma writer / helpers.bulk = {results['writer_vs_helpers_bulk']}; "
        f"on Beam / helpers.bulk = {results['beam_vs_helpers_bulk']}"
    )
    es.close()
    if args.json:
        print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
