"""Correlation in event time on BundleBasedDirectRunner with TestStream: order, lateness, watermarks."""

from __future__ import annotations

import dataclasses
import pickle
import random
from pathlib import Path

import orjson

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, RawRecord, Source
from kubesigma.connectors.model.event import event_from_bytes as _thaw
from kubesigma.connectors.model.event import event_to_bytes as _freeze
from kubesigma.detections.correlation import compile_correlations
from kubesigma.detections.engine import RuleSet
from support.audit_records import T0, audit_event, secret_reads, to_event
from support.beam_runs import Collected, run_batch, run_stream, script
from support.correlation_pack import ENUMERATION, SECRET_ENUMERATION, correlation, load
from support.falco_traces import falco_events
from support.paths import SHIPPED_CORRELATIONS, SHIPPED_RULES

SHIPPED = [SHIPPED_RULES, SHIPPED_CORRELATIONS]
DENIED_THEN_ALLOWED_BY_USER = "9b9a9d14-01da-453d-bc28-ffa8a5c3fea1"
DENIED_THEN_ALLOWED_BY_IP = "4f71ec27-94c3-4331-ba6c-4c61a2499e20"


def enumeration_alerts(items: list[tuple]) -> list[tuple]:
    return [x for x in items if x[0] == ENUMERATION]


def test_burst_across_a_fixed_window_boundary_fires(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    burst = secret_reads(T0 - 30, 10, step=6)  # 10 distinct secrets from 09:59:30 to 10:00:24
    out = Collected(tmp_path / "out.json")
    run_stream(script(("watermark", T0 - 60), ("add", burst), ("watermark", T0 + 60)), ruleset, plan, out)
    assert len(enumeration_alerts(out.items)) == 1


def test_slow_pattern_does_not_fire(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    slow = secret_reads(T0, 12, step=40)  # 12 secrets, one every 40 s: at most 8 in any 5 minutes
    out = Collected(tmp_path / "out.json")
    run_stream(script(("watermark", T0), ("add", slow), ("watermark", T0 + 600)), ruleset, plan, out)
    assert enumeration_alerts(out.items) == []


def test_out_of_order_arrival_gives_the_same_alert(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    burst = secret_reads(T0, 10, step=5)
    shuffled = burst[:]
    random.Random(7).shuffle(shuffled)
    in_order, out_of_order = Collected(tmp_path / "a.json"), Collected(tmp_path / "b.json")
    run_stream(script(("watermark", T0), ("add", burst), ("watermark", T0 + 60)), ruleset, plan, in_order)
    run_stream(
        script(("watermark", T0), ("add", shuffled), ("watermark", T0 + 60)), ruleset, plan, out_of_order
    )
    assert len(enumeration_alerts(in_order.items)) == 1
    assert enumeration_alerts(out_of_order.items) == enumeration_alerts(in_order.items)


def test_events_split_by_a_watermark_still_correlate(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    burst = secret_reads(T0, 10, step=10)
    steps = (
        ("watermark", T0),
        ("add", burst[:5]),
        ("watermark", T0 + 45),
        ("add", burst[5:]),
        ("watermark", T0 + 200),
    )
    out = Collected(tmp_path / "out.json")
    run_stream(script(*steps), ruleset, plan, out)
    assert len(enumeration_alerts(out.items)) == 1


def _late_script(burst):
    """9 distinct reads, a repeat at T0+150 that the group evaluates, then the 10th (T0+90) arrives late."""
    repeat = secret_reads(T0 + 150, 1, first_n=50, distinct=False)
    return script(
        ("watermark", T0),
        ("add", burst[:9] + repeat),
        ("watermark", T0 + 200),
        ("add", burst[9:]),
        ("watermark", T0 + 400),
    )


def test_late_event_beyond_allowed_lateness_is_dropped(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    burst = secret_reads(T0, 10, step=10)
    out = Collected(tmp_path / "out.json")
    run_stream(_late_script(burst), ruleset, plan, out, lateness=0)
    assert enumeration_alerts(out.items) == []


def test_late_event_within_allowed_lateness_is_counted(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    burst = secret_reads(T0, 10, step=10)
    out = Collected(tmp_path / "out.json")
    run_stream(_late_script(burst), ruleset, plan, out, lateness=300)
    assert len(enumeration_alerts(out.items)) == 1


def test_watermark_jump_far_ahead_fires_once_and_forgets_the_group(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    first = secret_reads(T0, 10, step=1)
    # After a jump of a day, 9 more reads by the same identity must not fire with the old ones.
    later = secret_reads(T0 + 86_400 * 2, 9, step=1, first_n=100)
    steps = (("add", first), ("watermark", T0 + 86_400), ("add", later), ("watermark", T0 + 86_400 * 3))
    out = Collected(tmp_path / "out.json")
    run_stream(script(*steps), ruleset, plan, out)
    assert len(enumeration_alerts(out.items)) == 1


def test_batch_and_streaming_give_the_same_alerts(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path, SECRET_ENUMERATION)
    events = (
        secret_reads(T0, 25, step=3)
        + secret_reads(T0 + 30, 12, step=40, user="bob", first_n=200)
        + secret_reads(T0 + 5, 10, step=2, user="carol", first_n=300, distinct=False)
    )
    # Out of order within each stretch of the stream, none late: the watermark only passes what arrived.
    early = [e for e in events if e.time < T0 + 50]
    later = [e for e in events if e.time >= T0 + 50]
    random.Random(3).shuffle(early)
    random.Random(4).shuffle(later)
    batch, stream = Collected(tmp_path / "batch.json"), Collected(tmp_path / "stream.json")
    run_batch(events, ruleset, plan, batch)
    steps = (
        ("watermark", T0),
        ("add", early),
        ("watermark", T0 + 50),
        ("add", later),
        ("watermark", T0 + 900),
    )
    run_stream(script(*steps), ruleset, plan, stream)
    assert len(enumeration_alerts(batch.items)) == 2  # mallory: 25 distinct secrets = 2 firings
    assert stream.items == batch.items


def test_events_cross_the_correlation_stage_unchanged(datasets: Path) -> None:
    """Correlation moves events as bytes (documents as their JSON, decoded again only for the alert):
    every sample format (GKE LogEntries with two views and cloud context, AKS, plain audit Events) and
    the Falco traces come back equal, containers of the same types included."""
    events = []
    for path in sorted((datasets / "format-samples").glob("*.jsonl")):
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            decoded = decode_record(RawRecord(line, Source(path.name, line=n)))
            events += [e for e in decoded if isinstance(e, AuditEvent)]
    for n, doc in enumerate(falco_events(), 1):
        events += [e for e in decode_record(RawRecord(orjson.dumps(doc), Source("falco", line=n)))]
    assert len(events) >= 60  # 12 sample records and the 51 Falco events
    assert any(len(e.views) > 1 and e.cloud is not None for e in events)
    assert [_thaw(_freeze(e)) for e in events] == events


def test_events_frozen_by_an_earlier_version_still_thaw(datasets: Path) -> None:
    """A job updated in place (Dataflow --update) keeps the events its state holds: those were written as
    a pickled tuple of the event's fields, and must come back as the same events."""
    lines = (datasets / "format-samples" / "gke-cloud-audit-logentries.jsonl").read_bytes().splitlines()
    events = [
        e for e in decode_record(RawRecord(lines[0], Source("gke", line=1))) if isinstance(e, AuditEvent)
    ]
    for e in events:
        s = e.source
        earlier = (
            tuple((ls.product, ls.service, ls.category, doc) for ls, doc in e.views),
            e.time, e.event_id, e.identity, (s.uri, s.line, s.offset, s.message_id, s.item),
            e.size, e.cluster, e.cloud, e.truncated, e.user_name, e.source_ip, e.user_agent,
        )  # fmt: skip
        # Earlier versions kept no request id: such an event is its own request (its event id).
        assert _thaw(pickle.dumps(earlier, protocol=pickle.HIGHEST_PROTOCOL)) == dataclasses.replace(
            e, request=""
        )
    assert events and events[0].cloud is not None


def test_an_event_json_cannot_hold_crosses_as_an_object() -> None:
    """orjson refuses integers beyond 64 bits: such an event is pickled instead, and still comes back."""
    doc = audit_event(1, at=T0, resource="pods", user="eve")
    doc["requestObject"] = {"spec": {"replicas": 2**70}}
    (event,) = decode_record(RawRecord(orjson.dumps({**doc, "requestObject": None}), Source("x", line=1)))
    event = dataclasses.replace(event, views=((event.views[0][0], doc),))
    assert _thaw(_freeze(event)) == event


def test_grouped_batch_and_state_and_timers_agree_on_chained_correlations(tmp_path: Path) -> None:
    """A bounded run correlates grouped by key; the state and timer code (streaming's) must give the same
    alerts, chained correlations included: a denied burst (level 0) then an allowed request (level 1)."""
    ruleset = RuleSet.load(SHIPPED)
    plan = compile_correlations(ruleset)
    kinds = ("secrets", "pods", "serviceaccounts", "configmaps", "roles", "nodes")  # probing: many kinds
    denied = [
        to_event(audit_event(i, at=T0 + i, resource=kinds[i % 6], user="eve", decision="forbid", code=403), i)
        for i in range(12)
    ]
    allowed = [
        to_event(audit_event(100 + i, at=T0 + 40 + i, resource="pods", user="eve"), 100 + i) for i in range(3)
    ]
    background = secret_reads(T0, 30, step=7, user="mallory", first_n=200)
    events = sorted(denied + allowed + background, key=lambda e: e.time)
    grouped, stateful = Collected(tmp_path / "grouped.json"), Collected(tmp_path / "stateful.json")
    grouped_counters = run_batch(events, ruleset, plan, grouped)
    stateful_counters = run_batch(events, ruleset, plan, stateful, bounded=False)
    fired = {rule for rule, _, _ in grouped.items}
    assert {DENIED_THEN_ALLOWED_BY_USER, DENIED_THEN_ALLOWED_BY_IP} <= fired
    assert stateful.items == grouped.items
    # mallory was never denied: the grouped run left her allowed reads out before the shuffle (one
    # element or more per bundle), while the state path counted them and found nothing.
    assert grouped_counters.get("correlation_unopened_dropped", 0) >= 1
    assert "correlation_unopened_dropped" not in stateful_counters


def _with_correlation(doc: dict) -> tuple:
    """Rule, alert id and everything a correlation alert says of its window (events, members, rules)."""
    return (
        doc["rule"]["id"],
        doc["kubesigma"]["alert_id"],
        orjson.dumps(doc["kubesigma"].get("correlation")).decode(),
    )


def test_dropping_what_no_first_step_is_near_keeps_every_window_whole(tmp_path: Path) -> None:
    """A bounded run drops, before the shuffle, second steps with no first step within a timespan of
    them (allowed requests far from any denied burst). Over an hour of traffic with bursts here and
    there, the alerts, down to each window's members, equal the state and timer path's, which keeps
    everything (and forgets steps older than the timespan by its timers; the grouped evaluation must
    forget them the same way)."""
    ruleset = RuleSet.load(SHIPPED)
    plan = compile_correlations(ruleset)
    rng = random.Random(11)
    users = [(f"dev{i}@example.com", f"198.51.100.{10 + i}") for i in range(3)]
    docs = []
    for step in range(360):  # every 10 s for an hour, each user: allowed reads
        for user, ip in users:
            t = T0 + step * 10 + rng.random()
            docs.append(audit_event(len(docs), at=t, resource="configmaps", user=user, ip=ip))
    kinds = ("pods", "secrets", "serviceaccounts", "configmaps", "roles", "nodes")  # probing: many kinds
    for start in (300.0, 1500.0, 1620.0, 3000.0):  # bursts of denials, one user each
        user, ip = rng.choice(users)
        for k in range(11):
            t = T0 + start + k * 3 + rng.random()
            docs.append(
                audit_event(
                    len(docs), at=t, resource=kinds[k % 6], user=user, ip=ip, decision="forbid", code=403
                )
            )
    # A quiet identity: a burst, an allowed request 400 s after its hit (within the 10-minute timespan:
    # it completes the sequence), another 650 s after it (too late: nothing), a second burst 1,000 s
    # after the first hit and no request after it.
    # Each of its bursts refuses five kinds of resources once: one probing hit, at the fifth refusal.
    quiet, quiet_ip = "quiet@example.com", "198.51.100.99"
    hit1 = T0 + 312.0
    for k, t in enumerate([T0 + 300 + k * 3 for k in range(5)] + [hit1 + 1000 + k * 3 for k in range(5)]):
        docs.append(
            audit_event(
                len(docs), at=t, resource=kinds[k % 5], user=quiet, ip=quiet_ip, decision="forbid", code=403
            )
        )
    for t in (hit1 + 400, hit1 + 650):
        docs.append(audit_event(len(docs), at=t, resource="configmaps", user=quiet, ip=quiet_ip))
    events = sorted((to_event(d, n) for n, d in enumerate(docs)), key=lambda e: e.time)
    grouped, stateful = Collected(tmp_path / "grouped.json"), Collected(tmp_path / "stateful.json")
    counters = run_batch(events, ruleset, plan, grouped, projection=_with_correlation)
    run_batch(events, ruleset, plan, stateful, bounded=False, projection=_with_correlation)
    fired = [
        item for item in grouped.items if item[0] in (DENIED_THEN_ALLOWED_BY_USER, DENIED_THEN_ALLOWED_BY_IP)
    ]
    assert len(fired) >= 4
    quiet_windows = [orjson.loads(item[2]) for item in fired if quiet in item[2] or quiet_ip in item[2]]
    assert [w["events"] for w in quiet_windows] == [2, 2]  # by identity and by address, 400 s apart
    assert counters.get("correlation_unopened_dropped", 0) > 1000  # most of the hour is far from a burst
    assert stateful.items == grouped.items


FEW_READS = "5a0f3c1e-7d2b-4c6a-9e41-1f8b2d3c4e03"
CLOSING = correlation(
    """\
    type: event_count
    rules: secret_access
    group-by: [user.username]
    timespan: 5m
    condition:
        lte: 2
""",
    title="Few Secret Reads (test, window closes)",
    cid=FEW_READS,
    level="low",
)


def test_a_window_that_closes_fires_the_same_grouped_stateful_and_streaming(tmp_path: Path) -> None:
    """lte fires when the window closes, on the window's last event: the same in all three paths."""
    ruleset, plan = load(tmp_path, CLOSING)
    events = secret_reads(T0, 2, step=20, user="quiet") + secret_reads(
        T0, 5, step=20, user="busy", first_n=50
    )
    outs = [Collected(tmp_path / f"{name}.json") for name in ("grouped", "stateful", "stream")]
    run_batch(events, ruleset, plan, outs[0])
    run_batch(events, ruleset, plan, outs[1], bounded=False)
    run_stream(script(("watermark", T0), ("add", events), ("watermark", T0 + 900)), ruleset, plan, outs[2])
    few = [x for x in outs[0].items if x[0] == FEW_READS]
    assert len(few) == 1  # the quiet user only
    assert outs[1].items == outs[0].items
    assert outs[2].items == outs[0].items
