"""The noise benchmark (bench/noise.py) and the busy day it generates: the quick run reports every platform
with its targets, every injected attack is in the side table and has an expected rule, a seed's day is the
same bytes every time, and the API server logs as its audit Policy says. Not the targets' values: they
follow the rules."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from kubesigma.connectors.simulated_cluster import busy_day, write_day
from kubesigma.connectors.simulated_cluster.api_server import ApiServer
from kubesigma.connectors.simulated_cluster.audit_policy import GCE_POLICY, KUBESIGMA_POLICY, PolicyRule
from kubesigma.connectors.simulated_cluster.day import (
    COMMON,
    FAMILIES,
    PLATFORM_FAMILY,
    PLATFORM_SCENES,
    scenarios_of,
)
from kubesigma.connectors.simulated_cluster.intrusions import SCENARIOS
from kubesigma.connectors.simulated_cluster.platforms import PLATFORMS as PLATFORMS_BY_NAME
from kubesigma.connectors.simulated_cluster.platforms import BusyCluster
from support.paths import REPO, bench_module

EXPECTED = bench_module("noise_labels").EXPECTED

PLATFORMS = ("gke", "eks", "self-managed")
QUICK = 3_000


def _request_ids(path: Path) -> set[str]:
    """The request ids (auditID; a GKE LogEntry's operation.id) of a written day, in whatever form the
    platform delivers it."""
    if path.suffix == ".gz":
        envelopes = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        return {orjson.loads(e["message"])["auditID"] for env in envelopes for e in env["logEvents"]}
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return {r["operation"]["id"] if "operation" in r else r["auditID"] for r in records}


@pytest.fixture(scope="module")
def quick_report() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "noise.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_quick_run_reports_every_platform_with_its_targets(quick_report: dict[str, Any]) -> None:
    assert [p["platform"] for p in quick_report["platforms"]] == list(PLATFORMS)
    assert isinstance(quick_report["pass"], bool)
    for platform in quick_report["platforms"]:
        assert platform["events"] >= QUICK
        assert platform["dead_lettered"] == 0
        levels = ["informational", "low", "medium", "high", "critical"]
        assert list(platform["alerts_per_100k"]) == levels
        assert list(platform["benign_alerts_per_100k"]) == levels
        targets = platform["targets"]
        assert set(targets) == {
            "benign_high_critical",
            "benign_high_critical_pass",
            "benign_medium_per_100k",
            "benign_medium_per_100k_pass",
        }
        assert targets["benign_high_critical_pass"] == (targets["benign_high_critical"] == 0)
        assert targets["benign_medium_per_100k_pass"] == (targets["benign_medium_per_100k"] <= 1)
        for rule in platform["benign_rules"]:
            assert {"title", "level", "id", "count", "per_100k"} <= rule.keys()
        recall = platform["recall"]
        assert recall["injected"] == len(scenarios_of(platform["platform"]))
        assert recall["caught"] == recall["injected"] - len(recall["missed"])
        assert platform["unlabelled_scenarios"] == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_weighted_scene_is_played_by_a_family(platform: str) -> None:
    cluster = BusyCluster(random.Random(1), PLATFORMS_BY_NAME[platform])
    api = ApiServer(cluster, cluster.platform.policy)
    played = {
        name for family in (*FAMILIES, PLATFORM_FAMILY[platform]) for name in family(cluster, api).scenes()
    }
    assert {name for name, _rate, _profile in COMMON + PLATFORM_SCENES[platform]} <= played


def test_every_scenario_has_an_expected_rule() -> None:
    assert set(EXPECTED) == set(SCENARIOS)
    assert all(EXPECTED[s] for s in SCENARIOS)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_injected_attack_is_in_the_side_table_with_its_records(platform: str, tmp_path: Path) -> None:
    log = write_day(platform, 5, QUICK, tmp_path)
    assert sorted(log.attacks) == sorted(scenarios_of(platform))
    audit_ids = _request_ids(log.path)
    for scenario, ids in log.attacks.items():
        assert ids & audit_ids, f"{scenario}: none of its records was written"
    if platform == "gke":  # alerts name GKE records by insertId
        insert_ids = {orjson.loads(line)["insertId"] for line in log.path.read_bytes().splitlines()}
        assert all(ids & insert_ids for ids in log.attacks.values())


def test_benign_records_are_not_in_the_side_table() -> None:
    labelled = [(record["auditID"], scenario) for record, scenario in busy_day("eks", 3, QUICK)]
    attack_ids = {audit_id for audit_id, scenario in labelled if scenario}
    assert all(audit_id not in attack_ids for audit_id, scenario in labelled if scenario is None)
    assert 0 < len(attack_ids) < 0.1 * len(labelled)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_same_seed_writes_the_same_bytes(platform: str, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("first", 11), ("again", 11), ("other", 12)):
        (tmp_path / name).mkdir()
        runs[name] = write_day(platform, seed, QUICK, tmp_path / name)
    assert runs["first"].path.read_bytes() == runs["again"].path.read_bytes()
    assert runs["first"].attacks == runs["again"].attacks
    assert runs["first"].path.read_bytes() != runs["other"].path.read_bytes()


def test_the_day_spans_24_hours_in_stage_time_order() -> None:
    records = [record for record, _scenario in busy_day("gke", 2, 20_000)]
    stages = [r["stageTimestamp"] for r in records]
    assert stages == sorted(stages)
    assert stages[0].startswith("2026-11-30T00:") and stages[-1] >= "2026-11-30T23:"


def test_long_running_requests_are_logged_at_both_stages_with_one_audit_id() -> None:
    stages: dict[str, list[str]] = {}
    for record, _scenario in busy_day("self-managed", 4, QUICK):
        if record["verb"] == "watch":
            stages.setdefault(record["auditID"], []).append(record["stage"])
    assert stages and all(
        s == ["ResponseStarted", "ResponseComplete"] for s in stages.values() if len(s) == 2
    )


def test_failed_authentication_is_logged_once_without_a_user() -> None:
    refused = [r for r, _s in busy_day("self-managed", 1, 20_000) if r["responseStatus"]["code"] == 401]
    assert refused
    for record in refused:
        assert record["user"] == {} and record["stage"] == "ResponseStarted" and "annotations" not in record


# ---- audit Policies ----------------------------------------------------------------------------------


def _level(policy: Any, user: str, verb: str, resource: str | None, group: str = "", sub: str | None = None,
           ns: str | None = None, path: str = "", groups: tuple[str, ...] = ()) -> str:  # fmt: skip
    return policy.level(user, groups, verb, group, resource, sub, ns, path)


def test_gce_policy_levels_as_gke_and_eks_log() -> None:
    sa = "system:serviceaccount:shop:web"
    assert _level(GCE_POLICY, "system:anonymous", "get", None, path="/healthz") == "None"
    assert _level(GCE_POLICY, "system:anonymous", "get", None, path="/readyz") == "Metadata"
    assert _level(GCE_POLICY, sa, "get", "secrets", ns="shop") == "Metadata"
    assert _level(GCE_POLICY, sa, "list", "pods", ns="shop") == "Request"
    assert _level(GCE_POLICY, sa, "create", "pods", ns="shop") == "RequestResponse"
    assert _level(GCE_POLICY, sa, "create", "pods", sub="exec", ns="shop") == "RequestResponse"
    assert _level(GCE_POLICY, sa, "update", "leases", "coordination.k8s.io", ns="kube-system") == "Metadata"
    assert _level(GCE_POLICY, sa, "create", "events", ns="shop") == "None"
    node = ("system:nodes", "system:authenticated")
    assert _level(GCE_POLICY, "system:node:n1", "patch", "nodes", sub="status", groups=node) == "Request"
    assert _level(GCE_POLICY, "system:kube-proxy", "watch", "endpoints") == "None"


def test_the_recommended_policy_mirrors_docs_audit_policy_yaml() -> None:
    doc = yaml.safe_load((REPO / "docs" / "audit-policy.yaml").read_text())
    rules = []
    for rule in doc["rules"]:
        resources = tuple(
            (r.get("group", ""), tuple(r.get("resources", ()))) for r in rule.get("resources", ())
        )
        rules.append(
            PolicyRule(
                rule["level"],
                users=tuple(rule.get("users", ())),
                groups=tuple(rule.get("userGroups", ())),
                verbs=tuple(rule.get("verbs", ())),
                namespaces=tuple(rule.get("namespaces", ())),
                resources=resources,
                paths=tuple(rule.get("nonResourceURLs", ())),
            )
        )
    assert tuple(rules) == KUBESIGMA_POLICY.rules
