"""The demo audit-log generator: deterministic, realistic, and carrying every mission scenario."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.formats._time import parse_rfc3339
from kubesigma.connectors.model import AuditEvent, Source
from kubesigma.connectors.simulated_cluster import generate
from kubesigma.detections.engine import RuleSet
from kubesigma.pipeline.commands.demo import run_generate
from support.paths import REPO

DEMO_SEED = 7
DEMO_EVENTS = 5000


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo.jsonl"
    assert run_generate(str(out), DEMO_SEED, DEMO_EVENTS, "demo") == 0
    return out


@pytest.fixture(scope="module")
def demo_events(demo_file: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in demo_file.read_bytes().splitlines()]


# ---- what each scenario looks like in an audit log, written independently of the generator ----


def _decision(e: dict[str, Any]) -> str | None:
    return e.get("annotations", {}).get("authorization.k8s.io/decision")


def _ref(e: dict[str, Any], key: str) -> Any:
    return e.get("objectRef", {}).get(key)


def is_anonymous_allowed_resource_access(e: dict[str, Any]) -> bool:
    return (
        e["user"]["username"] == "system:anonymous"
        and _decision(e) == "allow"
        and _ref(e, "resource") in ("pods", "secrets")
    )


def is_exec_with_command(e: dict[str, Any]) -> bool:
    if _ref(e, "resource") != "pods" or _ref(e, "subresource") != "exec" or e["verb"] != "create":
        return False
    commands = parse_qs(urlsplit(e["requestURI"]).query).get("command", [])
    return "sh" in commands and "-c" in commands


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("spec", {}).get("containers", [])


def _host_paths(pod: dict[str, Any]) -> list[str]:
    return [v["hostPath"]["path"] for v in pod.get("spec", {}).get("volumes", []) if "hostPath" in v]


def is_miner_pod_create(e: dict[str, Any]) -> bool:
    pod = e.get("requestObject") or {}
    if e["verb"] != "create" or _ref(e, "resource") != "pods" or _ref(e, "subresource"):
        return False
    privileged = any(c.get("securityContext", {}).get("privileged") for c in _containers(pod))
    miner = any(
        "xmrig" in c["image"] and any(a.startswith("stratum+tcp://") for a in c.get("args", []))
        for c in _containers(pod)
    )
    return privileged and "/" in _host_paths(pod) and miner


def secret_sweeps(events: list[dict[str, Any]], window: float = 300.0) -> list[str]:
    """Identities that listed secrets cluster-wide, then read >= 10 distinct secrets within `window`."""
    found = []
    lists: dict[str, float] = {}
    gets: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for e in events:
        who = e["user"]["username"]
        t = parse_rfc3339(e["requestReceivedTimestamp"])
        assert t is not None
        if _ref(e, "resource") != "secrets" or _decision(e) != "allow":
            continue
        if e["verb"] == "list" and not _ref(e, "namespace"):
            lists[who] = t
        elif e["verb"] == "get" and who in lists and t - lists[who] <= window:
            gets[who].add((_ref(e, "namespace"), _ref(e, "name")))
            if len(gets[who]) == 10:
                found.append(who)
    return found


def is_health_check(e: dict[str, Any]) -> bool:
    path = urlsplit(e["requestURI"]).path
    return e["user"]["username"] == "system:anonymous" and path in ("/healthz", "/livez", "/readyz")


def is_controller_reading_own_secret(e: dict[str, Any]) -> bool:
    user = e["user"]["username"]
    if (
        not user.startswith("system:serviceaccount:")
        or _ref(e, "resource") != "secrets"
        or e["verb"] != "get"
    ):
        return False
    _, _, ns, name = user.split(":")
    return _ref(e, "namespace") == ns and _ref(e, "name") == name


def is_system_identity(user: str) -> bool:
    """Control-plane components and kube-system's controllers: not every `system:` name (a pod's token is one)."""
    return user.startswith(("system:serviceaccount:kube-system:", "system:node:")) or user in (
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:addon-manager",
        "system:apiserver",
    )


def is_privileged_cni_workload(e: dict[str, Any]) -> bool:
    """The CNI DaemonSet or a pod its controller creates: privileged, host paths, kube-system, system identity."""
    obj = e.get("requestObject") or {}
    pod = obj.get("spec", {}).get("template", {}) if _ref(e, "resource") == "daemonsets" else obj
    return (
        e["verb"] == "create"
        and _ref(e, "resource") in ("pods", "daemonsets")
        and _ref(e, "namespace") == "kube-system"
        and is_system_identity(e["user"]["username"])
        and any(c.get("securityContext", {}).get("privileged") for c in _containers(pod))
        and bool(_host_paths(pod))
    )


def is_benign_look_alike(e: dict[str, Any]) -> bool:
    return is_health_check(e) or is_controller_reading_own_secret(e) or is_privileged_cni_workload(e)


# ---- determinism ----


def test_same_seed_writes_identical_bytes(tmp_path: Path, demo_file: Path) -> None:
    again = tmp_path / "again.jsonl"
    random.seed(12345)  # global randomness must not leak into the output
    assert run_generate(str(again), DEMO_SEED, DEMO_EVENTS, "demo") == 0
    assert again.read_bytes() == demo_file.read_bytes()


def test_different_seed_writes_different_bytes(tmp_path: Path, demo_file: Path) -> None:
    other = tmp_path / "other.jsonl"
    assert run_generate(str(other), DEMO_SEED + 1, DEMO_EVENTS, "demo") == 0
    assert other.read_bytes() != demo_file.read_bytes()


def test_kubesigma_demo_generate_writes_the_same_bytes(tmp_path: Path, demo_file: Path) -> None:
    out = tmp_path / "cli.jsonl"
    exe = shutil.which("kubesigma") or str(Path(sys.executable).with_name("kubesigma"))
    cmd = [exe, "demo", "generate", "--out", str(out), "--seed", str(DEMO_SEED),
           "--events", str(DEMO_EVENTS), "--cluster", "demo"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == demo_file.read_bytes()


def test_generate_leaves_global_random_state_alone() -> None:
    before = random.getstate()
    list(generate(3, 500))
    assert random.getstate() == before


# ---- shape ----


def test_writes_exactly_the_requested_number_of_events(demo_events: list[dict[str, Any]]) -> None:
    assert len(demo_events) == DEMO_EVENTS


def test_every_line_is_an_audit_v1_event(demo_events: list[dict[str, Any]]) -> None:
    required = {
        "kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "sourceIPs",
        "userAgent", "responseStatus", "requestReceivedTimestamp", "stageTimestamp", "annotations",
    }  # fmt: skip
    for e in demo_events:
        assert required <= e.keys(), e
        assert (e["kind"], e["apiVersion"]) == ("Event", "audit.k8s.io/v1")
        assert e["stage"] in ("ResponseStarted", "ResponseComplete")
        assert _decision(e) in ("allow", "forbid")


def test_events_are_in_event_time_order(demo_events: list[dict[str, Any]]) -> None:
    times = [parse_rfc3339(e["requestReceivedTimestamp"]) or 0.0 for e in demo_events]
    assert min(times) > 0 and times == sorted(times)


def test_no_event_is_repeated(demo_events: list[dict[str, Any]]) -> None:
    identities = [(e["auditID"], e["stage"]) for e in demo_events]
    assert len(set(identities)) == len(identities)


def test_long_running_requests_log_a_response_started_stage(demo_events: list[dict[str, Any]]) -> None:
    started = {e["verb"] for e in demo_events if e["stage"] == "ResponseStarted"}
    assert started == {"watch", "create"}  # watches, and exec's stream upgrade


def test_pod_creates_carry_full_request_and_response_objects(demo_events: list[dict[str, Any]]) -> None:
    creates = [
        e
        for e in demo_events
        if e["verb"] == "create" and _ref(e, "resource") == "pods" and not _ref(e, "subresource")
    ]
    assert len(creates) > 50
    for e in creates:
        assert e["level"] == "RequestResponse"
        assert _containers(e["requestObject"]) and e["responseObject"]["metadata"]["uid"]


def test_secrets_are_logged_at_metadata_level_without_bodies(demo_events: list[dict[str, Any]]) -> None:
    secret_events = [e for e in demo_events if _ref(e, "resource") == "secrets"]
    assert secret_events
    assert all("requestObject" not in e and "responseObject" not in e for e in secret_events)


def test_traffic_is_mostly_kubelets_and_control_plane(demo_events: list[dict[str, Any]]) -> None:
    system = [
        e
        for e in demo_events
        if e["user"]["username"].startswith(
            ("system:node:", "system:kube-", "system:serviceaccount:kube-system:")
        )
    ]
    assert len(system) > 0.6 * len(demo_events)


def test_every_event_decodes_as_a_kubernetes_audit_event(demo_events: list[dict[str, Any]]) -> None:
    for i, e in enumerate(demo_events, 1):
        (outcome,) = decode_value(e, Source("demo.jsonl", line=i))
        assert isinstance(outcome, AuditEvent), outcome


def test_rejects_too_few_events_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_generate(str(tmp_path / "x.jsonl"), 1, 10, "demo") == 2
    assert "--events" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_rejects_output_in_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_generate(str(tmp_path / "no" / "x.jsonl"), 1, 500, "demo") == 2
    assert "--out" in capsys.readouterr().err


# ---- scenarios ----


def test_contains_allowed_anonymous_access_to_pods_and_secrets(demo_events: list[dict[str, Any]]) -> None:
    hits = [e for e in demo_events if is_anonymous_allowed_resource_access(e)]
    assert {_ref(e, "resource") for e in hits} == {"pods", "secrets"}


def test_contains_exec_into_a_running_pod_with_a_shell_command(demo_events: list[dict[str, Any]]) -> None:
    running = {(_ref(e, "namespace"), _ref(e, "name")) for e in demo_events if _ref(e, "resource") == "pods"}
    execs = [e for e in demo_events if is_exec_with_command(e)]
    assert execs
    assert all((_ref(e, "namespace"), _ref(e, "name")) in running for e in execs)


def test_contains_a_cluster_wide_secret_list_then_ten_distinct_reads(
    demo_events: list[dict[str, Any]],
) -> None:
    assert len(secret_sweeps(demo_events)) == 1


def test_contains_a_privileged_host_root_miner_pod(demo_events: list[dict[str, Any]]) -> None:
    assert sum(map(is_miner_pod_create, demo_events)) == 1


def test_the_miner_is_deployed_from_the_address_that_probed_the_api_anonymously(
    demo_events: list[dict[str, Any]],
) -> None:
    probes = [e for e in demo_events if is_anonymous_allowed_resource_access(e)]
    (miner,) = [e for e in demo_events if is_miner_pod_create(e)]
    assert miner["sourceIPs"] == probes[0]["sourceIPs"]
    first = parse_rfc3339(probes[0]["requestReceivedTimestamp"]) or 0.0
    deployed = parse_rfc3339(miner["requestReceivedTimestamp"]) or 0.0
    assert 0 < deployed - first < 30 * 60


def test_contains_anonymous_health_checks(demo_events: list[dict[str, Any]]) -> None:
    checks = [e for e in demo_events if is_health_check(e)]
    assert len(checks) > 50 and all(_decision(e) == "allow" for e in checks)


def test_contains_a_controller_reading_its_own_secret(demo_events: list[dict[str, Any]]) -> None:
    assert any(map(is_controller_reading_own_secret, demo_events))


def test_contains_a_privileged_cni_daemonset_and_its_pods_created_by_system_identities(
    demo_events: list[dict[str, Any]],
) -> None:
    resources = [_ref(e, "resource") for e in demo_events if is_privileged_cni_workload(e)]
    assert resources.count("daemonsets") == 1 and resources.count("pods") >= 3
    assert not any(is_privileged_cni_workload(e) and is_miner_pod_create(e) for e in demo_events)


def test_benchmark_mix_holds_the_requested_share_of_attacks() -> None:
    events = list(generate(11, 20_000, attack_ratio=0.03))
    attacks = sum(
        is_anonymous_allowed_resource_access(e)
        or is_exec_with_command(e)
        or is_miner_pod_create(e)
        or (
            e["user"]["username"].startswith("system:serviceaccount:")
            and e["sourceIPs"][0].startswith(("203.", "198."))
        )
        for e in events
    )
    assert 0.02 * len(events) <= attacks <= 0.045 * len(events)


# ---- end to end: the shipped rules, the engine and the CLI ----

RULES_DIR = REPO / "detections" / "rules"
# Words the scenario rules' titles carry (the rule pack's author picks the exact titles).
SCENARIO_WORDS = {
    "anonymous": ("anonymous",),
    "exec": ("exec",),
    "secret sweep": ("secret",),
    "miner pod": ("privileged", "hostpath", "host path", "miner", "cryptomin"),
}
MEDIUM_PLUS = {"medium", "high", "critical"}


@pytest.fixture(scope="module")
def shipped_ruleset() -> RuleSet:
    assert sorted(RULES_DIR.rglob("*.yml")), f"no shipped rules in {RULES_DIR}"
    return RuleSet.load([RULES_DIR])


def _titles_matching(ruleset: Any, docs: list[dict[str, Any]], levels: set[str] | None = None) -> set[str]:
    titles = set()
    for doc in docs:
        (event,) = decode_value(doc, Source("demo.jsonl"))
        assert isinstance(event, AuditEvent)
        titles |= {r.title for r in ruleset.match(event) if levels is None or r.level in levels}
    return titles


def _scenario_events(scenario: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if scenario == "secret sweep":
        (who,) = secret_sweeps(events)
        return [e for e in events if e["user"]["username"] == who and _ref(e, "resource") == "secrets"]
    is_attack = {
        "anonymous": is_anonymous_allowed_resource_access,
        "exec": is_exec_with_command,
        "miner pod": is_miner_pod_create,
    }[scenario]
    return [e for e in events if is_attack(e)]


@pytest.mark.parametrize("scenario", sorted(SCENARIO_WORDS))
def test_shipped_rules_match_each_attack(
    scenario: str, shipped_ruleset: Any, demo_events: list[dict[str, Any]]
) -> None:
    titles = _titles_matching(shipped_ruleset, _scenario_events(scenario, demo_events), MEDIUM_PLUS)
    assert any(w in t.lower() for t in titles for w in SCENARIO_WORDS[scenario]), titles


def test_shipped_rules_raise_nothing_medium_or_above_on_benign_look_alikes(
    shipped_ruleset: Any, demo_events: list[dict[str, Any]]
) -> None:
    look_alikes = [e for e in demo_events if is_benign_look_alike(e)]
    assert look_alikes
    assert _titles_matching(shipped_ruleset, look_alikes, MEDIUM_PLUS) == set()


@pytest.fixture(scope="module")
def demo_run(demo_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], str]:
    """The real CLI, as `make demo` runs it: Beam's FnApiRunner over the demo file, shipped rules."""
    out = tmp_path_factory.mktemp("run")
    exe = shutil.which("kubesigma") or str(Path(sys.executable).with_name("kubesigma"))
    cmd = [exe, "run", "--input", str(demo_file), "--alerts-out", str(out / "alerts.jsonl"),
           "--dead-letter", str(out / "dead.jsonl"), "--metrics-out", str(out / "metrics.json"),
           "--runner", "FnApiRunner"]  # fmt: skip
    try:
        # 5,000 events take seconds; minutes mean the job is stuck, not slow.
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=REPO)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"`{' '.join(cmd)}` did not finish in {err.timeout}s")
    assert proc.returncode == 0, proc.stderr[-4000:]
    alerts = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    return alerts, proc.stdout


@pytest.fixture(scope="module")
def demo_alerts(demo_run: tuple[list[dict[str, Any]], str]) -> list[dict[str, Any]]:
    return demo_run[0]


def _alerted_events(alerts: list[dict[str, Any]], words: tuple[str, ...]) -> list[dict[str, Any]]:
    return [a["kubernetes"]["audit"] for a in alerts if any(w in a["rule"]["name"].lower() for w in words)]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SCENARIO_WORDS))
def test_demo_run_alerts_on_each_attack(
    scenario: str, demo_alerts: list[dict[str, Any]], demo_events: list[dict[str, Any]]
) -> None:
    hit = {e["auditID"] for e in _alerted_events(demo_alerts, SCENARIO_WORDS[scenario])}
    assert hit & {e["auditID"] for e in _scenario_events(scenario, demo_events)}


@pytest.mark.slow
def test_demo_run_prints_every_rule_that_fired(demo_run: tuple[list[dict[str, Any]], str]) -> None:
    alerts, stdout = demo_run
    assert alerts
    assert all(a["rule"]["name"] in stdout for a in alerts)


@pytest.mark.slow
def test_demo_run_raises_nothing_medium_or_above_on_benign_look_alikes(
    demo_alerts: list[dict[str, Any]],
) -> None:
    loud = [
        (a["rule"]["name"], a["kubernetes"]["audit"]["auditID"])
        for a in demo_alerts
        if a["rule"]["level"] in MEDIUM_PLUS and is_benign_look_alike(a["kubernetes"]["audit"])
    ]
    assert loud == []
