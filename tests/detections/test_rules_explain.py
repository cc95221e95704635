"""`kubesigma rules explain`: the verdict it gives (read off the reference interpreter's trace) is the
compiled engine's on every shipped rule, for every Falco trace event as kube-apiserver, GKE and EKS
deliver it, for every positive and negative case of every rule, and for the demo traffic; and the
explanation names the selections, fields, values and gates that decided it."""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from kubesigma.connectors import delivery
from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.model import AuditEvent, Source
from kubesigma.detections import rule_tests
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.explain import RuleExplainer
from kubesigma.pipeline.commands.rules_explain import run_explain
from support.audit_records import audit_event
from support.falco_traces import falco_events
from support.paths import FALCO_TRACES, SHIPPED_CORRELATIONS, SHIPPED_RULES

PRIVILEGED = "5b17c9f4-6238-464e-9ab7-76c927c66b3e"
EXEC = "a61a4cb5-9f7f-4a74-a4a0-86f2e023e530"


@cache
def _ruleset() -> RuleSet:
    # As `kubesigma run` loads them: the pack and the correlation rules with their input rules.
    return RuleSet.load([SHIPPED_RULES, SHIPPED_CORRELATIONS])


@cache
def _explainer(rule_id: str) -> RuleExplainer:
    return RuleExplainer(_ruleset(), rule_id)


def _decoded(value: Any, label: str) -> list[AuditEvent]:
    events = [e for e in decode_value(value, Source(label)) if isinstance(e, AuditEvent)]
    assert events, label
    return events


@cache
def _falco_deliveries() -> tuple[tuple[str, AuditEvent], ...]:
    out: list[tuple[str, AuditEvent]] = []
    for i, record in enumerate(falco_events()):
        for fmt, value in rule_tests.deliveries("kubernetes/audit", record):
            out.extend((f"falco[{i}] {fmt}", e) for e in _decoded(value, f"falco-{i}-{fmt}"))
    return tuple(out)


def _disagreements(rule_id: str, events: Any) -> list[str]:
    explainer = _explainer(rule_id)
    bad = []
    for label, event in events:
        engine = rule_id in {r.id for r in _ruleset().match(event)}
        if explainer.explain(event).verdict != engine:
            bad.append(f"{label}: explain says {not engine}, the engine {engine}")
    return bad


RULE_IDS = [r.id for r in RuleSet.load([SHIPPED_RULES, SHIPPED_CORRELATIONS]).rules]


def test_falco_traces_are_all_there() -> None:
    assert len(falco_events()) == 51
    assert len(_falco_deliveries()) == 3 * 51


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_explain_agrees_with_the_engine_on_every_falco_trace_event(rule_id: str) -> None:
    assert _disagreements(rule_id, _falco_deliveries()) == []


def _case_deliveries(info: Any) -> list[tuple[str, AuditEvent]]:
    """Every case of the rule in every format, and its match cases refused and as a dry run (what
    `kubesigma rules test` delivers)."""
    key = f"{info.logsource.product}/{info.logsource.service}"
    cases = rule_tests.load_cases(rule_tests.case_file_for(info.path))
    out: list[tuple[str, AuditEvent]] = []
    for case in cases:
        record = rule_tests.COMPLETERS[key](case.event, f"{case.rule_stem}/{case.expect}/{case.name}")
        variants = [(case.name, record)]
        if key == "kubernetes/audit" and case.expect == "match":
            variants += [
                (f"{case.name}, {how}", rule_tests.refused(record, how)) for how in rule_tests.REFUSALS
            ]
            variants.append((f"{case.name}, dry run", rule_tests.dry_run(record)))
        for name, value in variants:
            for fmt, delivered in rule_tests.deliveries(key, value):
                out.extend((f"{name} [{fmt}]", e) for e in _decoded(delivered, f"{name}-{fmt}"))
    return out


SHIPPED_IDS = [r.id for r in RuleSet.load([SHIPPED_RULES]).rules]


@pytest.mark.parametrize("rule_id", SHIPPED_IDS)
def test_explain_agrees_with_the_engine_on_every_case_of_the_rule(rule_id: str) -> None:
    events = _case_deliveries(_ruleset().rule(rule_id))
    assert len(events) >= 2  # a match and a no_match case at least
    assert _disagreements(rule_id, events) == []


@pytest.mark.slow
def test_explain_agrees_with_the_engine_on_the_demo_traffic() -> None:
    from kubesigma.connectors.simulated_cluster import generate

    events = [e for i, r in enumerate(generate(7, 3000, attack_ratio=0.0)) for e in _decoded(r, f"demo-{i}")]
    # Every event a rule alerts on, and a spread of the rest (each pair of rule and event costs a trace;
    # correlation inputs match most events, so they are covered by the spread).
    alone = _ruleset().correlation_only_ids
    fired = [e for e in events if any(r.id not in alone for r in _ruleset().match(e))]
    sample = [*fired, *events[::40]]
    assert len(fired) >= 20
    bad = [d for rule_id in RULE_IDS for d in _disagreements(rule_id, [(e.event_id, e) for e in sample])]
    assert bad == []


# ---- what an explanation says -------------------------------------------------------------------


def _falco(name: str) -> AuditEvent:
    (event,) = _decoded(json.loads((FALCO_TRACES / name).read_text()), name)
    return event


def test_a_match_names_each_selection_item_field_value_and_the_gate() -> None:
    e = _explainer(PRIVILEGED).explain(_falco("create_nginx_pod_privileged.json"))
    assert e.verdict
    (view,) = e.views
    assert view.routed and view.fires
    selections = {d.name: d for d in view.detections}
    assert selections["workload_write"].matched and selections["privileged"].matched
    assert not selections["filter_status"].matched and selections["filter_status"].role == "filter"
    verb = next(i for i in selections["workload_write"].items if i.written == "verb")
    (test,) = verb.tests
    assert test.event_value == "create" and test.matched_values == ["create"]
    # The condition step by step: the root, then each detection under its operator.
    assert [(s.depth, s.node, s.value) for s in view.condition[:3]] == [
        (0, "and", True),
        (1, "workload_write", True),
        (1, "privileged", True),
    ]
    assert ("not", True) in [(s.node, s.value) for s in view.condition]
    assert view.gate is not None and view.gate.applies and view.gate.succeeded
    assert view.gate.fields["responseStatus.code"] == 201


def test_a_miss_shows_the_selection_and_value_that_decided_it() -> None:
    e = _explainer(PRIVILEGED).explain(_falco("create_nginx_pod_unprivileged.json"))
    assert not e.verdict
    (view,) = e.views
    privileged = next(d for d in view.detections if d.name == "privileged")
    assert not privileged.matched
    assert all(not i.matched for i in privileged.items)
    assert ("privileged", False) in [(s.node, s.value) for s in view.condition]


def test_the_written_key_keeps_the_modifiers_and_the_test_shows_the_mapped_fields() -> None:
    # `exec.command` is a normalized field: the tests run on the request URI and GKE's command label.
    rule_id = next(r.id for r in _ruleset().rules if Path(r.path).stem == "exec_credential_access")
    record = audit_event(
        verb="create",
        resource="pods",
        subresource="exec",
        namespace="shop",
        name="web-1",
        code=101,
        uri="/api/v1/namespaces/shop/pods/web-1/exec?command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken",
    )
    (event,) = _decoded(record, "exec")
    e = _explainer(rule_id).explain(event)
    items = [i for v in e.views for d in v.detections for i in d.items]
    written = [i.written for i in items]
    assert any(w.startswith("exec.command") for w in written), written
    fields = {t.field for i in items if i.written.startswith("exec.command") for t in i.tests}
    assert {"requestURI", "annotations.command.gke.io/command"} <= fields


def test_a_refused_request_is_kept_out_by_the_outcome_gate_and_says_so() -> None:
    record = rule_tests.refused(
        rule_tests.complete_audit_event(
            {
                "verb": "create",
                "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "a", "name": "p"},
            },
            "refused",
        ),
        "refused by the authorizer",
    )
    (event,) = _decoded(record, "refused")
    e = _explainer(EXEC).explain(event)
    (view,) = e.views
    assert all(s.value for s in view.condition)  # the condition holds...
    assert view.gate is not None and view.gate.succeeded is False  # ...the gate keeps it out
    assert not view.fires and not e.verdict
    assert view.gate.fields["responseStatus.code"] == 403


def test_a_gke_entry_is_explained_per_view_with_routing() -> None:
    record = json.loads((FALCO_TRACES / "attach_pod.json").read_text())
    (event,) = _decoded(delivery.as_gke_logentry(record, as_written=True), "gke")
    e = _explainer(EXEC).explain(event, "gke-audit-logentry")
    routed = {v.logsource: v.routed for v in e.views}
    assert routed == {"kubernetes/audit": True, "gcp/gcp.audit": False}
    assert e.verdict and e.event["format"] == "gke-audit-logentry"


def test_credentials_are_redacted_in_the_values_shown() -> None:
    rule_id = next(r.id for r in _ruleset().rules if Path(r.path).stem == "configmap_with_credentials")
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    record = audit_event(
        verb="create",
        resource="configmaps",
        namespace="shop",
        name="app",
        code=201,
        request_object={
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "data": {"password": "hunter2", "jwt": token},
        },
    )
    (event,) = _decoded(record, "configmap")
    text = json.dumps(_explainer(rule_id).explain(event).as_dict())
    assert "hunter2" not in text and token not in text
    assert "[REDACTED]" in text


def test_a_sigma_filter_from_the_engine_configuration_is_named(tmp_path: Path) -> None:
    (tmp_path / "filters").mkdir()
    (tmp_path / "filters" / "shop.yml").write_text(
        "title: Shop team execs\nid: 7d0d2b8a-8f39-4d8c-9f73-3c1b0c6b6a11\nlogsource: {product: kubernetes, service: audit}\n"
        "filter:\n  rules: [k8s_pod_exec_or_attach]\n  selection:\n    objectRef.namespace: shop\n  condition: not selection\n",
        encoding="utf-8",
    )
    (tmp_path / "engine.yml").write_text("filters: [filters/]\n", encoding="utf-8")
    out = io.StringIO()
    record = rule_tests.complete_audit_event(
        {
            "verb": "create",
            "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "shop", "name": "p"},
        },
        "filtered",
    )
    path = tmp_path / "event.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    status = run_explain(EXEC, str(path), engine_config=str(tmp_path / "engine.yml"), as_json=True, out=out)
    assert status == 1
    (view,) = json.loads(out.getvalue())["views"]
    roles = [d["role"] for d in view["detections"]]
    assert any(r.startswith("filter file: Shop team execs") for r in roles), roles


# ---- the command ----------------------------------------------------------------------------------


def test_exit_0_on_a_match_and_1_on_a_miss(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_explain(PRIVILEGED, str(FALCO_TRACES / "create_nginx_pod_privileged.json")) == 0
    assert "verdict: MATCH" in capsys.readouterr().out
    assert run_explain(PRIVILEGED, str(FALCO_TRACES / "create_nginx_pod_unprivileged.json")) == 1
    assert "verdict: no match" in capsys.readouterr().out


def test_the_rule_may_be_named_by_file_and_the_event_by_line(tmp_path: Path) -> None:
    records = falco_events()[:3]
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    rule_file = SHIPPED_RULES / "kubernetes" / "audit" / "privileged_container.yml"
    out = io.StringIO()
    status = run_explain(str(rule_file), f"{path}:2", as_json=True, out=out)
    doc = json.loads(out.getvalue())
    assert doc["event"]["event_id"] == records[1]["auditID"]
    assert doc["rule"]["id"] == PRIVILEGED
    assert status == (0 if doc["verdict"] else 1)


def test_the_event_may_come_on_standard_input_gzipped(tmp_path: Path) -> None:
    import gzip

    record = json.loads((FALCO_TRACES / "create_nginx_pod_privileged.json").read_text())
    stdin = io.BufferedReader(io.BytesIO(gzip.compress(json.dumps(record).encode())))
    out = io.StringIO()
    assert run_explain(PRIVILEGED, "-", stdin=stdin, out=out, as_json=True) == 0
    assert json.loads(out.getvalue())["event"]["source"].startswith("<stdin>")


@pytest.mark.parametrize(
    ("rule", "event", "message"),
    [
        ("no-such-rule", "create_nginx_pod_privileged.json", "no loaded rule"),
        (PRIVILEGED, "missing.json", "no such file"),
        (PRIVILEGED, "create_nginx_pod_privileged.json:7", "no record starts on line 7"),
        ("4891b83f-e847-49fa-934d-5d84e365cda3", "create_nginx_pod_privileged.json", "correlation rule"),
    ],
)
def test_errors_exit_2_with_one_line(
    rule: str, event: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_explain(rule, str(FALCO_TRACES / event)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_record_no_format_claims_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.BufferedReader(io.BytesIO(b'{"hello": "world"}\n'))
    assert run_explain(PRIVILEGED, "-", stdin=stdin) == 2
    assert "not a record kubesigma reads" in capsys.readouterr().err


def test_the_cli_runs_it_as_a_subcommand(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubesigma.pipeline.cli",
            "rules",
            "explain",
            "--rule",
            EXEC,
            "--event",
            "-",
            "--json",
        ],
        input=(FALCO_TRACES / "attach_pod.json").read_bytes(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] is True
