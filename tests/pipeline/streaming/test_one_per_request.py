"""One alert per request and rule: kube-apiserver writes a long-running request (exec, attach,
port-forward, watch) when its response starts and again when it completes, with one audit ID; GKE writes
two entries of one operation. Whatever stages arrive, in whatever order, batch and streaming give one
alert whose id is a function of the rule and the request; `event.id` stays the record's own; a
correlation counts the request once."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson

from kubesigma.connectors.delivery import as_gke_logentry
from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, RawRecord, Source
from kubesigma.connectors.model.alert import document_id
from kubesigma.detections.correlation import CorrelationPlan, compile_correlations
from kubesigma.detections.engine import RuleSet
from kubesigma.pipeline.alerts import REQUEST_HORIZON, SHORT_REQUEST_HORIZON, request_horizon
from support.audit_records import T0, audit_event, to_event
from support.beam_runs import Collected, run_batch, run_stream, script
from support.correlation_pack import SECRET_ACCESS, SECRET_ACCESS_RULE

EXEC = "0e6c7a52-8b8e-4f0b-9d6c-2a1f5b7c8d01"
BURST = "0e6c7a52-8b8e-4f0b-9d6c-2a1f5b7c8d02"
RULES = f"""\
title: Exec (test)
id: {EXEC}
name: test_exec
status: test
logsource:
    product: kubernetes
    service: audit
detection:
    selection:
        objectRef.subresource: exec
    condition: selection
level: low
---
title: Three Execs (test)
id: {BURST}
status: test
correlation:
    type: event_count
    rules: test_exec
    group-by: [user.username]
    timespan: 5m
    condition:
        gte: 3
    generate: true
level: high
"""


def load_rules(tmp_path: Path, text: str) -> tuple[RuleSet, CorrelationPlan]:
    (tmp_path / "rules.yml").write_text(text)
    ruleset = RuleSet.load([tmp_path])
    return ruleset, compile_correlations(ruleset)


def _exec_stages(n: int, t: float) -> list[AuditEvent]:
    """Request n's ResponseStarted and ResponseComplete records: one auditID, two records."""
    doc = audit_event(
        n, at=t, verb="create", resource="pods", name=f"web-{n}", subresource="exec", user="eve", code=101
    )
    started = {**doc, "stage": "ResponseStarted"}
    complete = {**doc, "stage": "ResponseComplete", "stageTimestamp": "2026-11-28T10:30:00.000000Z"}
    return [to_event(started, 2 * n), to_event(complete, 2 * n + 1)]


def _audit_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def _ids_and_events(collected: Collected) -> list[tuple[str, str, str]]:
    return sorted((rule, alert_id, event_id) for rule, alert_id, event_id in collected.items)


def _projection(doc: dict) -> tuple[str, str, str]:
    return doc["rule"]["id"], doc["kubesigma"]["alert_id"], doc["event"]["id"]


def test_an_exec_logged_at_two_stages_raises_one_alert(tmp_path: Path) -> None:
    ruleset, plan = load_rules(tmp_path, RULES)
    events = _exec_stages(0, T0)
    out = Collected(tmp_path / "batch.json")
    counters = run_batch(events, ruleset, plan, out, projection=_projection)
    assert _ids_and_events(out) == [(EXEC, document_id(EXEC, _audit_id(0)), _audit_id(0))]
    assert counters["request_stages_merged"] == 1


def test_a_stream_gives_the_same_alert_whichever_stage_comes_first(tmp_path: Path) -> None:
    ruleset, plan = load_rules(tmp_path, RULES)
    started, complete = _exec_stages(0, T0)
    expected = [(EXEC, document_id(EXEC, _audit_id(0)), _audit_id(0))]
    for name, order in (("started-first", [started, complete]), ("complete-first", [complete, started])):
        out = Collected(tmp_path / f"{name}.json")
        run_stream(
            script(("add", order[:1]), ("watermark", T0 + 5), ("add", order[1:]), ("watermark", T0 + 60)),
            ruleset,
            plan,
            out,
            projection=_projection,
        )
        assert _ids_and_events(out) == expected, name


def test_the_two_entries_gke_writes_for_an_exec_raise_one_alert(tmp_path: Path) -> None:
    ruleset, plan = load_rules(tmp_path, RULES)
    native = [
        {
            **audit_event(0, verb="create", resource="pods", name="web-0", subresource="exec", user="eve"),
            "stage": stage,
        }
        for stage in ("ResponseStarted", "ResponseComplete")
    ]
    entries = [as_gke_logentry(doc, as_written=True) for doc in native]
    assert entries[0]["insertId"] != entries[1]["insertId"]
    events = [
        e
        for n, entry in enumerate(entries)
        for e in decode_record(RawRecord(orjson.dumps(entry), Source("gke.jsonl", line=n + 1)))
    ]
    assert all(isinstance(e, AuditEvent) for e in events) and len(events) == 2
    out = Collected(tmp_path / "gke.json")
    run_batch(events, ruleset, plan, out, projection=_projection)
    ((_, alert_id, event_id),) = _ids_and_events(out)
    assert alert_id == document_id(EXEC, _audit_id(0))  # the operation id is the audit ID
    assert event_id in {e["insertId"] for e in entries}  # the entry's own id


def test_a_correlation_counts_a_request_once(tmp_path: Path) -> None:
    ruleset, plan = load_rules(tmp_path, RULES)
    two = [e for n in range(2) for e in _exec_stages(n, T0 + 10 * n)]
    out = Collected(tmp_path / "two.json")
    run_batch(two, ruleset, plan, out, projection=_projection)
    assert BURST not in {rule for rule, _, _ in out.items}  # four records, two requests
    three = [e for n in range(3) for e in _exec_stages(n, T0 + 10 * n)]
    for name, run in (("batch", run_batch), ("stream", None)):
        out = Collected(tmp_path / f"three-{name}.json")
        if run is not None:
            run(three, ruleset, plan, out, projection=_projection)
        else:
            run_stream(
                script(("add", three), ("watermark", T0 + 120)), ruleset, plan, out, projection=_projection
            )
        assert [rule for rule, _, _ in out.items].count(BURST) == 1, name


def test_a_stream_forgets_a_request_after_an_hour_and_an_exec_after_a_day(tmp_path: Path) -> None:
    """The state kept per request is cleared by its event-time timer: a secret read delivered again an
    hour and more later (watermark past it) is alerted again, its state gone; the second stage of an
    exec that long after is still merged, a long-running request being kept for a day."""
    ruleset, plan = load_rules(tmp_path, RULES + "---\n" + SECRET_ACCESS_RULE)
    read = to_event(audit_event(7, at=T0, verb="get", resource="secrets", name="db", user="eve"), 20)
    started, complete = _exec_stages(0, T0)
    later = T0 + SHORT_REQUEST_HORIZON + 60
    out = Collected(tmp_path / "stream.json")
    run_stream(
        script(
            ("add", [read, started]),
            ("watermark", later),
            ("add", [read, complete]),
            ("watermark", later + 5),
        ),
        ruleset,
        plan,
        out,
        projection=_projection,
    )
    read_alert = (SECRET_ACCESS, document_id(SECRET_ACCESS, _audit_id(7)), _audit_id(7))
    exec_alert = (EXEC, document_id(EXEC, _audit_id(0)), _audit_id(0))
    assert _ids_and_events(out) == sorted([read_alert, read_alert, exec_alert])


def test_how_long_a_stream_keeps_a_request_follows_kube_apiservers_long_running_check() -> None:
    def horizon(**changes: object) -> float:
        doc = audit_event(1, resource="pods", name="web")
        ref = dict(doc["objectRef"])
        verb = changes.pop("verb", doc["verb"])
        ref.update(changes)
        return request_horizon(to_event({**doc, "verb": verb, "objectRef": ref}))

    assert horizon() == SHORT_REQUEST_HORIZON
    assert horizon(subresource="exec") == REQUEST_HORIZON
    assert horizon(verb="watch") == REQUEST_HORIZON
    # A subresource that is no string (a garbled record) is no long-running one, and fails no lookup.
    assert horizon(subresource=["exec"]) == SHORT_REQUEST_HORIZON
