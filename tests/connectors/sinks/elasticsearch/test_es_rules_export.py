"""`kubesigma rules export --format elastic`: offline, ATT&CK names from our own table, and queries the
real Elasticsearch parses and runs against kubesigma's events mapping."""

from __future__ import annotations

import json
import urllib.request

import pytest

from kubesigma.connectors.sinks.es_indices import install_templates
from kubesigma.pipeline.commands.rules_export import convert_elastic, run_export


@pytest.fixture(scope="module")
def exported() -> list[dict]:
    text, problems = convert_elastic([])
    assert [p for p in problems if "no Elastic query-rule form" not in p] == []
    return [json.loads(line) for line in text.splitlines()]


def test_export_never_opens_a_url(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network access during export: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    out = tmp_path / "rules.ndjson"
    assert run_export([], "elastic", str(out)) == 0
    assert out.read_text().count("\n") > 0


def test_exported_rules_carry_attack_names_from_the_shipped_table(exported):
    from kubesigma.detections.attack import TECHNIQUES

    named = {
        t["id"]: t["name"] for rule in exported for threat in rule["threat"] for t in threat["technique"]
    }
    assert named
    assert all(TECHNIQUES[tid][0] == name for tid, name in named.items())


@pytest.mark.elasticsearch
def test_every_exported_query_runs_on_elasticsearch_and_finds_real_anonymous_access(
    es, config, exported, falco_events
):
    from dataclasses import replace

    install_templates(replace(config, index_events=True))
    index = f"{config.index_prefix}-events-2018.10.25"
    for i, event in enumerate(falco_events):
        es.index(
            index=index,
            id=str(i),
            document={
                "@timestamp": event["stageTimestamp"],
                "kubernetes": {"audit": event},
                "kubesigma": {"event_id": str(i)},
            },
        )
    es.indices.refresh(index=index)
    found: dict[str, int] = {}
    for rule in exported:
        result = es.count(
            index=index, query={"query_string": {"query": rule["query"], "analyze_wildcard": True}}
        )
        found[rule["name"]] = result["count"]
    assert found["SIGMA - Kubernetes API Request By Anonymous User Allowed"] >= 1
