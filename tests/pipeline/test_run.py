"""`kubesigma run` end to end on Beam's FnApiRunner: counts, dead letters, alerts, and refusals."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubesigma.connectors.sources.files import MiB
from kubesigma.pipeline.cli import main
from support.audit_records import audit_event, routine_read
from support.cli_runs import run_argv
from support.correlation_pack import POD_EXEC_RULE, SECRET_ACCESS, SECRET_ACCESS_RULE, correlation


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "secret.yml").write_text(SECRET_ACCESS_RULE)
    (folder / "exec.yml").write_text(POD_EXEC_RULE)
    return folder


def run(
    tmp_path: Path, inputs: list[str], rules: Path, *extra: str
) -> tuple[int, dict[str, Any], list[dict], list[dict], str]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    argv = run_argv(out, inputs, "--rules", str(rules), "--runner", "FnApiRunner", *extra)
    printed = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(printed):
        code = main(argv)
    metrics = json.loads((out / "metrics.json").read_text())
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    dead = [json.loads(line) for line in (out / "dead.jsonl").read_text().splitlines()]
    return code, metrics, alerts, dead, printed.getvalue()


def assert_invariant(metrics: dict[str, Any]) -> None:
    assert metrics["read"] == metrics["normalized"] + metrics["dead_lettered"] + metrics["skipped"]


def test_falco_traces_read_52_normalized_51_dead_lettered_1(
    tmp_path: Path, rules: Path, datasets: Path
) -> None:
    code, metrics, _alerts, dead, printed = run(
        tmp_path, [str(datasets / "falco-k8s-audit" / "traces" / "*.json")], rules
    )
    assert code == 0
    assert (metrics["read"], metrics["normalized"], metrics["dead_lettered"], metrics["skipped"]) == (
        52,
        51,
        1,
        0,
    )
    assert_invariant(metrics)
    (letter,) = dead
    assert letter["source"]["uri"].endswith("fal_01_003.json")
    assert "not a Kubernetes audit event" in letter["reason"]
    assert letter["raw"] == '{"kind":0}'
    assert "read 52, normalized 51, dead_lettered 1" in printed


def write_garbage_mix(path: Path) -> None:
    """1,000 garbage lines and 1,003 valid events (three padded past 2 MiB), shuffled."""
    rng = random.Random(11)
    valid = [orjson.dumps(routine_read(i)) for i in range(1000)]
    padded = [
        orjson.dumps(routine_read(5000 + i, requestObject={"pad": "p" * (2 * MiB + 100)})) for i in range(3)
    ]
    garbage: list[bytes] = []
    for i in range(998):
        kind = i % 3
        if kind == 0:
            full = orjson.dumps(routine_read(9000 + i))
            garbage.append(full[: rng.randrange(5, len(full) - 5)])
        elif kind == 1:
            garbage.append(bytes(rng.randrange(256) for _ in range(40)).replace(b"\n", b"\x00"))
        else:
            garbage.append(orjson.dumps({"kind": "Pod", "metadata": {"name": f"p{i}"}}))
    garbage += [b"X" * (2 * MiB), b"<html>" + b"Y" * (2 * MiB) + b"</html>"]
    lines = valid + padded + garbage
    rng.shuffle(lines)
    # Keep the first line valid JSON so the file is read line by line, as such a log would be.
    lines.insert(0, lines.pop(lines.index(valid[0])))
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_garbage_mix_counts_every_record_and_exits_zero(tmp_path: Path, rules: Path) -> None:
    path = tmp_path / "mixed.log"
    write_garbage_mix(path)
    code, metrics, _, dead, _ = run(tmp_path, [str(path)], rules, "--max-record-bytes", "4MiB")
    assert code == 0
    assert (metrics["read"], metrics["normalized"], metrics["dead_lettered"]) == (2003, 1003, 1000)
    assert_invariant(metrics)
    assert len(dead) == 1000
    assert all(d["reason"] and d["source"]["uri"] == str(path) and d["source"]["line"] >= 1 for d in dead)


def test_records_over_the_default_hard_limit_are_dead_lettered(tmp_path: Path, rules: Path) -> None:
    path = tmp_path / "huge.log"
    path.write_bytes(orjson.dumps(routine_read(1, requestObject={"pad": "p" * (17 * MiB)})) + b"\n")
    _, metrics, _, dead, _ = run(tmp_path, [str(path)], rules)
    assert (metrics["read"], metrics["dead_lettered"]) == (1, 1)
    assert "over the hard limit of 16777216 bytes" in dead[0]["reason"]


def test_event_list_and_multi_member_gzip_count_each_event_once(tmp_path: Path, rules: Path) -> None:
    (tmp_path / "list.json").write_text(
        json.dumps(
            {
                "kind": "EventList",
                "apiVersion": "audit.k8s.io/v1",
                "items": [routine_read(i) for i in range(7)],
            },
            indent=2,
        )
    )
    with (tmp_path / "shipped.log.gz").open("wb") as handle:
        for member in range(4):
            handle.write(
                gzip.compress(
                    b"".join(orjson.dumps(routine_read(100 + member * 5 + i)) + b"\n" for i in range(5))
                )
            )
    _, metrics, _, _, _ = run(tmp_path, [str(tmp_path / "list.json"), str(tmp_path / "*.gz")], rules)
    assert (metrics["read"], metrics["normalized"]) == (27, 27)


def secret_create(n: int, **members: Any) -> dict[str, Any]:
    """A Secret `db-<n>` created with kubectl, its password in the request object; logged at Metadata
    level all the same, two source addresses."""
    return audit_event(
        n,
        verb="create",
        namespace="prod",
        name=f"db-{n}",
        uri="/api/v1/namespaces/prod/secrets",
        user_agent="kubectl/v1.31.0",
        sourceIPs=["203.0.113.9", "10.0.0.1"],
        requestObject={
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": f"db-{n}"},
            "data": {"password": "aHVudGVyMg=="},
        },
        **members,
    )


def test_alerts_are_ecs_documents_with_deterministic_ids(tmp_path: Path, rules: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(orjson.dumps(secret_create(1)) + b"\n" + orjson.dumps(routine_read(2)) + b"\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run(tmp_path / "a", [str(path)], rules)
    second = run(tmp_path / "b", [str(path)], rules)
    (alert,) = first[2]
    assert alert["kubesigma"]["alert_id"] == second[2][0]["kubesigma"]["alert_id"]
    assert alert["@timestamp"] == "2026-11-28T10:00:00.000000Z"
    assert alert["event"]["kind"] == "alert"
    assert alert["event"]["id"] == routine_read(1)["auditID"]
    assert alert["event"]["severity"] == 47
    assert alert["rule"]["name"] == "Secret Access"
    assert alert["rule"]["level"] == "medium"
    assert alert["threat"][0]["technique"][0]["id"] == "T1552.007"
    assert alert["user"]["name"] == "mallory"
    assert alert["source"]["ip"] == "203.0.113.9"
    assert alert["user_agent"]["original"] == "kubectl/v1.31.0"
    assert alert["kubernetes"]["audit"]["objectRef"]["name"] == "db-1"
    assert alert["kubesigma"]["source"] == {"uri": str(path), "line": 1, "offset": 0}


def test_secret_values_are_redacted_in_alerts_while_the_rule_still_fires(tmp_path: Path, rules: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(orjson.dumps(secret_create(1)) + b"\n")
    _, metrics, alerts, _, _ = run(tmp_path, [str(path)], rules)
    assert metrics["alerts"] == 1
    assert alerts[0]["kubernetes"]["audit"]["requestObject"]["data"] == {"password": "[REDACTED]"}
    assert "aHVudGVyMg==" not in (tmp_path / "out" / "alerts.jsonl").read_text()


def test_cluster_name_option_reaches_alerts(tmp_path: Path, rules: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(orjson.dumps(secret_create(1)) + b"\n")
    _, _, alerts, _, _ = run(tmp_path, [str(path)], rules, "--cluster-name", "prod-eu1")
    assert alerts[0]["orchestrator"]["cluster"]["name"] == "prod-eu1"


def test_outputs_of_records_over_the_soft_limit_drop_bulky_objects_and_say_so(
    tmp_path: Path, rules: Path
) -> None:
    path = tmp_path / "audit.log"
    event = secret_create(1)
    event["requestObject"]["metadata"]["annotations"] = {"pad": "p" * (2 * MiB)}
    path.write_bytes(orjson.dumps(event) + b"\n")
    _, _, alerts, _, _ = run(tmp_path, [str(path)], rules)
    audit = alerts[0]["kubernetes"]["audit"]
    assert "requestObject" not in audit
    assert audit["objectRef"]["resource"] == "secrets"
    assert any("requestObject" in note for note in alerts[0]["kubesigma"]["truncated_fields"])


def test_summary_lists_rules_that_fired_with_level_and_hits(
    tmp_path: Path, rules: Path, datasets: Path
) -> None:
    _, metrics, alerts, _, printed = run(
        tmp_path, [str(datasets / "falco-k8s-audit" / "traces" / "*.json")], rules
    )
    exec_hits = sum(a["rule"]["name"] == "Pod Exec" for a in alerts)
    assert exec_hits >= 1
    assert metrics["alerts"] == len(alerts)
    line = next(row for row in printed.splitlines() if "Pod Exec" in row)
    assert line.split()[:2] == ["medium", str(exec_hits)]


def test_unknown_option_fails_fast_with_a_message(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", "--input", str(tmp_path), "--alerts-out", "a", "--dead-letter", "d", "--rulez", str(rules)]
    )
    assert code == 2
    assert "--rulez" in capsys.readouterr().err


def test_input_glob_matching_nothing_fails_fast(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--input",
            str(tmp_path / "nope*.log"),
            "--alerts-out",
            "a",
            "--dead-letter",
            "d",
            "--rules",
            str(rules),
        ]
    )
    assert code == 2
    assert "matches no file" in capsys.readouterr().err


def test_bad_rule_is_refused_at_start_up_naming_its_file(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rules / "broken.yml").write_text(
        SECRET_ACCESS_RULE.replace("condition: selection", "condition: selection and nothing")
    )
    path = tmp_path / "audit.log"
    path.write_bytes(orjson.dumps(routine_read(1)) + b"\n")
    code = main(
        [
            "run",
            "--input",
            str(path),
            "--alerts-out",
            str(tmp_path / "a"),
            "--dead-letter",
            str(tmp_path / "d"),
            "--rules",
            str(rules),
        ]
    )
    assert code == 2
    assert "broken.yml" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


SECRET_BURST = correlation(
    f"""\
    type: event_count
    rules:
        - {SECRET_ACCESS}
    group-by:
        - user.username
    timespan: 5m
    generate: false
    condition:
        gte: 3
""",
    title="Secret Burst In Tests",
    cid="7c1f0d7e-2b1e-4c55-9d7a-0a3c5e6f7a03",
)


def test_summary_folds_correlation_inputs_that_raise_no_alert_of_their_own(
    tmp_path: Path, rules: Path
) -> None:
    (rules / "burst.yml").write_text(SECRET_BURST)
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(orjson.dumps(secret_create(i)) + b"\n" for i in range(4)))
    _, metrics, alerts, _, printed = run(tmp_path, [str(path)], rules)
    assert [a["rule"]["name"] for a in alerts] == ["Secret Burst In Tests"]
    assert metrics["alerts"] == 1
    assert "Secret Access" not in printed
    assert "correlation inputs (no alerts of their own): 1 rules matched 4 events" in printed


def test_falco_traces_sharing_an_audit_id_raise_one_alert_per_rule(tmp_path: Path, datasets: Path) -> None:
    """Two of Falco's traces (a privileged second container, with and without a security context on the
    first) are one captured request written to two files: same auditID, same stage. Falco's parity
    cases run each file alone and expect the privileged-pod rule in each; one run over both is one
    request, so one alert, with the event of the file read first."""
    from support.paths import SHIPPED_RULES

    traces = datasets / "falco-k8s-audit" / "traces"
    pair = [
        traces / "create_nginx_pod_no_secctx_1st_container_privileged_2nd_container.json",
        traces / "create_nginx_pod_privileged_2nd_container.json",
    ]
    audit_ids = {json.loads(p.read_text())["auditID"] for p in pair}
    assert len(audit_ids) == 1
    privileged = "Privileged Container In A Pod Or Workload Spec"

    def privileged_alert_ids(name: str, inputs: list[Path]) -> list[str]:
        (tmp_path / name).mkdir()
        code, metrics, alerts, _dead, _printed = run(tmp_path / name, [str(p) for p in inputs], SHIPPED_RULES)
        assert code == 0
        assert_invariant(metrics)
        return [a["kubesigma"]["alert_id"] for a in alerts if a["rule"]["name"] == privileged]

    first, second = (privileged_alert_ids(p.stem, [p]) for p in pair)
    assert len(first) == len(second) == 1 and first == second  # the alert id is rule + request
    assert privileged_alert_ids("both", pair) == first
