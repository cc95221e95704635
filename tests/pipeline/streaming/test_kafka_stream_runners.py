"""A long-running streaming job reading Kafka, on Prism and on embedded Flink: every alert a timer emits
reaches the alert files and Elasticsearch while the job runs, with the watermark far past its event time,
and the job's alerts are the batch run's over the same records.

The test plays a log shipper. Once `kubesigma run --streaming --kafka-bootstrap ...` is started (its own
process; Prism built from the Go module proxy, or Flink 1.19 embedded in Beam's Flink job server,
`--flink_master=[local]`; the SDK harness in the job's process, LOOPBACK), it produces two hours old
records: a secret enumeration (a correlation rule fires when the watermark passes its window) and
repeated reads by a system identity (a single-event rule; suppression folds the repeats into a follow-up
emitted when the run closes). Then it keeps producing current, rule-free records on both partitions: the
watermark jumps to the present, two hours past those alerts' event time, and the job stays busy. Once
the correlation and the follow-up are in a finished alert file and in Elasticsearch, it stops producing;
the job then finishes by itself (`--kafka-max-idle`): every window closes and it exits 0.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubesigma.pipeline.run import run
from support.audit_records import audit_event, routine_read
from support.beam_runs import finished_documents
from support.es_cluster import drop_prefix, es_url_or_skip, ids_in
from support.kafka_broker import Broker
from support.portable_runners import flink_job_server_jar, prism_binary
from support.streaming_job import start_job

pytestmark = pytest.mark.slow

HOURS_BEHIND = 2 * 3600  # how far the watermark moves past the timer-emitted alerts' event time
SEEN_LIMIT_S = 180  # the timer-emitted alerts must be in both sinks within this, while the job runs
ENUMERATION = "Kubernetes Secret Enumeration By One Identity"


def runner_args(runner: str) -> list[str]:
    if runner == "prism":
        return ["--runner=PrismRunner", f"--prism_location={prism_binary()}"]
    return [
        "--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
        f"--flink_job_server_jar={flink_job_server_jar()}", "--environment_type=LOOPBACK", "--parallelism=1",
    ]  # fmt: skip


def old_records(at: float) -> list[bytes]:
    """Twelve secret reads by one identity within two minutes (an enumeration), and four reads of one configmap
    by kube-system's default service account from a public address, a minute apart (a single-event rule;
    the last three fold into a follow-up)."""
    secrets = [audit_event(i, at=at + 10 * i, name=f"secret-{i}") for i in range(12)]
    controller = [
        audit_event(
            100 + i,
            at=at + 60 * i,
            resource="configmaps",
            name="kube-proxy",
            user="system:serviceaccount:kube-system:default",
        )
        for i in range(4)
    ]
    return [orjson.dumps(doc) for doc in secrets + controller]


@dataclass
class StreamRun:
    runner: str
    returncode: int
    seen_while_running: list[dict[str, Any]]  # alert documents in finished files while the job ran
    indexed_while_running: set[str]
    alerts: list[dict[str, Any]]  # every finished alert document, once the job ended
    indexed: list[str]  # every alert _id in Elasticsearch (a list: a duplicate would show)
    metrics: dict[str, Any]
    produced: Path  # every record produced, in order, one a line: the batch run's input
    old_time: float
    log: str


def is_follow_up(alert: dict[str, Any]) -> bool:
    return "suppression" in alert["kubesigma"]


def is_correlation(alert: dict[str, Any]) -> bool:
    return alert["rule"]["name"] == ENUMERATION


@pytest.fixture(scope="module", params=["prism", pytest.param("flink", marks=pytest.mark.flink)])
def stream_run(
    request: pytest.FixtureRequest, kafka: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StreamRun]:
    from elasticsearch import Elasticsearch

    runner = request.param
    tmp = tmp_path_factory.mktemp(f"kafka-{runner}")
    es_url = es_url_or_skip()
    es = Elasticsearch(es_url, request_timeout=30)
    prefix = f"kst-{uuid.uuid4().hex[:10]}"
    topic = kafka.create_topic(partitions=2)
    argv = [
        "--streaming", "--kafka-bootstrap", kafka.bootstrap, "--kafka-topic", topic, "--kafka-group", f"kst-{runner}",
        "--kafka-max-idle", "8s", "--file-interval", "1s", "--suppress-window", "10m",
        "--alerts-out", str(tmp / "alerts"), "--dead-letter", str(tmp / "dead"),
        "--metrics-out", str(tmp / "metrics.json"), "--es-url", es_url, "--es-index-prefix", prefix,
        *runner_args(runner),
    ]  # fmt: skip
    job = start_job(argv, tmp / "job.log")
    produced: list[bytes] = []

    def produce(records: list[bytes], partition: int) -> None:
        kafka.produce(topic, records, partition=partition)
        produced.extend(records)

    old_time = time.time() - HOURS_BEHIND
    seen: list[dict[str, Any]] = []
    indexed_early: set[str] = set()
    try:
        old = old_records(old_time)
        produce(old[::2], 0)
        produce(old[1::2], 1)
        deadline = time.monotonic() + SEEN_LIMIT_S
        for n in itertools.count():
            # Current records on both partitions, one each a second: the watermark follows the present.
            produce([orjson.dumps(routine_read(1000 + n, at=time.time()))], n % 2)
            seen = finished_documents(tmp / "alerts")
            indexed_early = set(ids_in(es, prefix))
            timer_emitted = [a for a in seen if is_follow_up(a) or is_correlation(a)]
            both = {a["kubesigma"]["alert_id"] for a in timer_emitted}
            if len(timer_emitted) >= 2 and both <= indexed_early and any(map(is_follow_up, timer_emitted)):
                break
            if time.monotonic() > deadline or not job.running():
                break
            time.sleep(1)
        running = job.running()
        returncode = job.wait()
    finally:
        job.stop()
    if not running:
        seen, indexed_early = [], set()
    batch_input = tmp / "produced.jsonl"
    batch_input.write_bytes(b"".join(r + b"\n" for r in produced))
    metrics_file = tmp / "metrics.json"
    try:
        yield StreamRun(
            runner,
            returncode,
            seen,
            indexed_early,
            finished_documents(tmp / "alerts"),
            ids_in(es, prefix),
            orjson.loads(metrics_file.read_bytes()) if metrics_file.exists() else {},
            batch_input,
            old_time,
            job.tail(),
        )
    finally:
        drop_prefix(es, prefix)
        es.close()


def batch_alert_ids(produced: Path, tmp: Path) -> set[str]:
    """`kubesigma run` in batch (FnApiRunner) over the same records, suppressing as the stream does."""
    out = tmp / "batch.jsonl"
    argv = [
        "--input", str(produced), "--suppress-window", "10m", "--runner=FnApiRunner",
        "--alerts-out", str(out), "--dead-letter", str(tmp / "dead.jsonl"),
    ]  # fmt: skip
    with (tmp / "summary.txt").open("w") as summary:
        run(argv, summary)
    return {orjson.loads(line)["kubesigma"]["alert_id"] for line in out.read_bytes().splitlines()}


def test_the_job_stops_by_itself_once_the_topic_is_idle(stream_run: StreamRun) -> None:
    assert stream_run.returncode == 0, stream_run.log


def test_a_correlation_and_a_suppression_follow_up_are_written_while_the_job_runs(
    stream_run: StreamRun,
) -> None:
    seen = stream_run.seen_while_running
    assert any(map(is_correlation, seen)), stream_run.log
    assert any(map(is_follow_up, seen)), stream_run.log


def test_timer_emitted_alerts_are_indexed_while_the_job_runs(stream_run: StreamRun) -> None:
    timer_emitted = {
        a["kubesigma"]["alert_id"]
        for a in stream_run.seen_while_running
        if is_follow_up(a) or is_correlation(a)
    }
    assert timer_emitted and timer_emitted <= stream_run.indexed_while_running


def test_the_watermark_moved_far_past_the_timer_emitted_alerts(stream_run: StreamRun) -> None:
    newest_old_ms = (stream_run.old_time + 600) * 1000  # the old records span less than ten minutes
    assert stream_run.metrics["source_watermark_ms"] >= newest_old_ms + (HOURS_BEHIND - 900) * 1000
    follow_up = next(a for a in stream_run.alerts if is_follow_up(a))
    last_seen = follow_up["kubesigma"]["suppression"]["last_seen"]
    assert last_seen < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stream_run.old_time + 600))


def test_every_alert_reaches_both_sinks_once(stream_run: StreamRun) -> None:
    file_ids = [a["kubesigma"]["alert_id"] for a in stream_run.alerts]
    assert len(file_ids) == len(set(file_ids)) == stream_run.metrics["alerts"]
    assert sorted(stream_run.indexed) == sorted(file_ids)


def test_the_stream_gives_the_batch_run_alert_ids(stream_run: StreamRun, tmp_path: Path) -> None:
    batch = batch_alert_ids(stream_run.produced, tmp_path)
    assert {a["kubesigma"]["alert_id"] for a in stream_run.alerts} == batch
