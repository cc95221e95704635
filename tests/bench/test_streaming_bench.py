"""What bench/streaming.py measures, without a job: records are stamped with their send time where the
Kafka source reads event time, and an alert's latency is counted from its triggering record (a
correlation's latest contributor), suppression follow-ups left out. The timed runs themselves (embedded
Flink, minutes) are `make bench-streaming`, not a test."""

from __future__ import annotations

from typing import Any

import orjson

from kubesigma.connectors.formats import DecodeContext, decode_record
from kubesigma.connectors.model import RawRecord, Source
from kubesigma.connectors.sources import record_time
from support.paths import bench_module

streaming = bench_module("streaming")


def test_a_demo_record_sent_later_carries_the_send_time_as_its_event_time() -> None:
    traffic = streaming.Traffic.generate(200, seed=3, attack_ratio=0.0)
    audit_id, parts, delay = traffic.records[0]
    sent_at = 1_900_000_000.25
    value = streaming.Traffic.stamp(parts, delay, sent_at)
    assert abs(record_time(value) - sent_at) < 1e-5
    event = orjson.loads(value)
    assert event["auditID"] == audit_id
    outcomes = list(decode_record(RawRecord(value, Source("kafka://t/0", offset=0)), DecodeContext()))
    assert [round(e.time, 5) for e in outcomes] == [round(sent_at, 5)]  # decoded: an AuditEvent


def alert(alert_id: str, event_id: str, **kubesigma: Any) -> dict[str, Any]:
    return {"event": {"id": event_id}, "kubesigma": {"alert_id": alert_id, **kubesigma}}


def test_latency_runs_from_the_triggering_record_and_leaves_follow_ups_out() -> None:
    sent = {"warm": 0.0, "a": 10.0, "b": 11.0, "c": 12.5}
    seen = {
        "w": (3.0, alert("w", "warm")),
        "single": (12.0, alert("single", "a")),
        "corr": (16.0, alert("corr", "a", correlation={"event_ids": ["a", "c", "b"]})),
        "follow-up": (600.0, alert("follow-up", "b", suppression={"count": 3})),
    }
    result = streaming.latencies(seen, sent, skip="warm")
    assert result["alerts"] == 3  # the warm-up's alert is not counted
    assert (result["measured"], result["follow_ups"], result["unmeasured"]) == (2, 1, 0)
    assert result["max_latency_s"] == 3.5  # the correlation, from "c", its latest contributor
    assert result["p50_latency_s"] == 3.5 and result["p99_latency_s"] == 3.5
    assert result["p50_latency_s_by_third"][0] is None  # two alerts: the first third is empty
    # Each kind apart: single-event alerts wait for the source's watermark, correlations for more stages.
    assert result["p50_latency_s_single"] == result["p99_latency_s_single"] == 2.0
    assert result["p99_latency_s_correlation"] == 3.5


def test_the_batch_rate_is_the_steady_rate_between_two_runs() -> None:
    """Start-up and the other fixed costs of a batch run drop out: the rate is what the larger run did
    more over the time it took more (the stream is measured started, too)."""
    runs = {
        "fixed": {"records": 30_000, "seconds": 11.0, "cpu_seconds": 9.0, "ids": set()},
        "most": {"records": 120_000, "seconds": 17.0, "cpu_seconds": 14.0, "ids": {"a"}},
    }
    rate = streaming.batch_rate(runs, "fixed", "most")
    assert rate["batch_rps"] == 15_000.0  # 90,000 more records in 6 s more
    assert rate["batch_rps_cpu"] == 18_000.0  # in 5 CPU s more
    assert rate["batch_rps_whole"] == round(120_000 / 17.0, 1)  # start-up included
    assert rate["cpu_seconds"] == {"fixed": 9.0, "most": 14.0}
