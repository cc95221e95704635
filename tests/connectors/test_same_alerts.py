"""The same attacks delivered natively, through EKS (CloudWatch subscription envelopes in a gzip
Firehose-style file) and through GKE (Cloud Logging LogEntries) fire the same rules of the shipped pack,
end to end through `kubesigma run` on Beam's FnApiRunner."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

from kubesigma.connectors.delivery import as_gke_logentry
from kubesigma.pipeline.cli import main

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, name: str, path: Path) -> tuple[list[dict], dict]:
    alerts, metrics = tmp_path / f"{name}.alerts.jsonl", tmp_path / f"{name}.metrics.json"
    argv = [
        "run",
        "--input",
        str(path),
        "--alerts-out",
        str(alerts),
        "--dead-letter",
        str(tmp_path / f"{name}.dl"),
    ]
    assert main([*argv, "--metrics-out", str(metrics), "--suppress-window", "0s"]) == 0
    return [json.loads(line) for line in alerts.read_text().splitlines()], json.loads(metrics.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, falco):
    tmp_path = tmp_path_factory.mktemp("same-alerts")
    native = tmp_path / "native.jsonl"
    native.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in falco))
    gke = tmp_path / "gke.jsonl"
    gke.write_bytes(
        b"".join(orjson.dumps(as_gke_logentry(e, project="p-1", cluster="c1")) + b"\n" for e in falco)
    )
    from kubesigma.connectors.delivery import write_cloudwatch_gzip

    eks = write_cloudwatch_gzip(tmp_path / "eks.jsonl.gz", falco, per_envelope=7, cluster="falco-eks")
    return {
        name: _run(tmp_path, name, path) for name, path in (("native", native), ("eks", eks), ("gke", gke))
    }


def _by_rule_and_event(alerts):
    return Counter((a["rule"]["id"], a["event"]["id"]) for a in alerts)


def test_native_run_fires_alerts_at_all(runs):
    alerts, metrics = runs["native"]
    assert alerts and metrics["normalized"] == 51


def test_eks_delivery_gives_the_same_alerts_rule_by_rule_and_event_by_event(runs):
    assert _by_rule_and_event(runs["eks"][0]) == _by_rule_and_event(runs["native"][0])


def test_eks_alerts_carry_aws_and_the_cluster(runs):
    alerts, metrics = runs["eks"]
    assert metrics["normalized"] == 51 and metrics["dead_lettered"] == 0
    assert {(a["cloud"]["provider"], a["orchestrator"]["cluster"]["name"]) for a in alerts} == {
        ("aws", "falco-eks")
    }


def test_gke_delivery_fires_the_same_rules_on_the_same_audit_events(runs):
    def by_audit_id(alerts):
        return Counter((a["rule"]["id"], a["kubernetes"]["audit"]["auditID"]) for a in alerts)

    assert by_audit_id(runs["gke"][0]) == by_audit_id(runs["native"][0])


def test_gke_alerts_carry_gcp_project_region_and_cluster(runs):
    clouds = {
        (
            a["cloud"]["provider"],
            a["cloud"]["account"]["id"],
            a["cloud"]["region"],
            a["orchestrator"]["cluster"]["name"],
        )
        for a in runs["gke"][0]
    }
    assert clouds == {("gcp", "p-1", "us-central1", "c1")}
