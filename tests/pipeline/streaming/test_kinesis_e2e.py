"""`kubesigma run --streaming --kinesis-stream` end to end on Prism and on Flink: the EKS path
(CloudWatch Logs subscription → Kinesis) read by a job that keeps polling.

moto's Kinesis in server mode on 127.0.0.1 stands in for AWS (a test double: real Kinesis cannot be
reached from here); the real boto3 client of the job finds it through AWS_ENDPOINT_URL, and moto's
resharding is corrected to what Kinesis documents (support/kinesis_streams.py). The test plays the
subscription: it puts gzip subscription envelopes of audit Events stamped with the wall clock, in
waves, each after the job's checkpoint shows the previous one read, with a split and then a merge of
the shards between waves, so every wave reaches the job while it runs. A secret enumeration spans all
three waves, so its correlation fires only if nothing is lost across the resharding. The job stops by
itself once the stream is idle (--kinesis-max-idle); a second job resumes from the checkpoint.
The same runs on Beam's Prism runner (built from the Go module proxy, .ci/prism/build-prism.sh) and on
Flink 1.19 embedded in Beam's Flink job server (`--flink_master=[local]`, .ci/flink/job-server.sh);
the SDK harness runs in the job's process (LOOPBACK).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from kubesigma.connectors.delivery import as_cloudwatch_envelope, as_kinesis_data
from support.audit_records import audit_event
from support.beam_runs import finished_documents
from support.kinesis_streams import STREAM, correct_moto_resharding, merge, open_shards, split
from support.portable_runners import flink_job_server_jar, prism_binary

pytestmark = pytest.mark.slow

WAVE_LIMIT_S = 180  # a job that never reads a wave fails the test instead of hanging CI
ENUMERATION = "Kubernetes Secret Enumeration By One Identity"
EXEC = "Exec Or Attach Into A Pod Container"
MALFORMED = b"\x1f\x8b this is no gzip payload"
# No suppression or lateness: a read is committed once its minute of event time is written.
PROMPT_COMMIT = ("--suppress-window", "0", "--allowed-lateness", "0s")


class Subscription:
    """Puts audit Events into the stream as a CloudWatch Logs subscription does (one gzip envelope per
    record, the log stream as partition key), and remembers where each record went."""

    def __init__(self, kinesis: Any) -> None:
        self.kinesis = kinesis
        self.n = 0
        self.last: dict[str, str] = {}  # shard -> last sequence number put
        self.records = 0
        self.events = 0
        self.last_time = 0.0

    def put(self, data: bytes, key: str = "kube-apiserver-audit-0a1b") -> dict[str, Any]:
        answer = self.kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey=key)
        self.last[answer["ShardId"]] = answer["SequenceNumber"]
        self.records += 1
        return answer

    def events_now(self, *events: dict[str, Any]) -> None:
        for event in events:
            self.events += 1
            self.put(
                as_kinesis_data(as_cloudwatch_envelope([event], cluster="falco-eks")), f"audit-{self.n % 3}"
            )

    def doc(self, **kw: Any) -> dict[str, Any]:
        self.n += 1
        self.last_time = time.time()
        return audit_event(2000 + self.n, at=self.last_time, **kw)

    def secret_reads(self, first: int, count: int) -> list[dict[str, Any]]:
        return [self.doc(name=f"secret-{i}") for i in range(first, first + count)]

    def committed(self, checkpoint: Path, job: Job) -> None:
        """Waits until the job's checkpoint file holds every record put so far (read and processed)."""
        deadline = time.monotonic() + WAVE_LIMIT_S
        while time.monotonic() < deadline and job.alive():
            if checkpoint.exists() and self._covered(json.loads(checkpoint.read_text())):
                return
            time.sleep(0.2)
        job.stop()
        pytest.fail(f"the job did not read the wave:\n{job.log()}")

    def _covered(self, state: dict[str, Any]) -> bool:
        shards, drained = state.get("shards", {}), set(state.get("drained", []))
        return all(s in drained or int(shards.get(s, "0")) >= int(seq) for s, seq in self.last.items())


@dataclass
class Job:
    """`kubesigma run` in its own process group (a hung job is stopped whole)."""

    proc: subprocess.Popen[bytes]
    out: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + WAVE_LIMIT_S
        while time.monotonic() < deadline and self.alive():
            if text in (self.out / "job.log").read_text(errors="replace"):
                return
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"no {text!r} from the job:\n{self.log()}")

    def log(self) -> str:
        return (self.out / "job.log").read_text(errors="replace")[-3000:]

    def metrics(self) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=WAVE_LIMIT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the job did not stop by itself once the stream was idle:\n{self.log()}")
        assert self.proc.returncode == 0, self.log()
        return json.loads((self.out / "metrics.json").read_text())

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def runner_args(runner: str) -> list[str]:
    if runner == "prism":
        return ["--runner=PrismRunner", f"--prism_location={prism_binary()}"]
    return [
        "--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
        f"--flink_job_server_jar={flink_job_server_jar()}", "--parallelism=1", "--environment_type=LOOPBACK",
    ]  # fmt: skip


def start_job(out: Path, checkpoint: Path, runner: str, *extra: str) -> Job:
    out.mkdir()
    argv = [
        sys.executable, "-m", "kubesigma.pipeline.cli", "--verbose", "run", "--streaming",
        "--kinesis-stream", STREAM, "--kinesis-checkpoint", str(checkpoint),
        "--kinesis-interval", "0.3s", "--kinesis-max-idle", "10s",
        *runner_args(runner),
        "--alerts-out", str(out / "alerts"), "--dead-letter", str(out / "dead"),
        "--metrics-out", str(out / "metrics.json"), *extra,
    ]  # fmt: skip
    with (out / "job.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Job(proc, out)


@dataclass
class KinesisRun:
    first: dict[str, Any]
    second: dict[str, Any]
    first_records: int
    second_records: int
    first_events: int
    second_events: int
    last_event_ms: int  # of the first job
    malformed: dict[str, Any]
    parents: set[str]
    checkpoint: dict[str, Any]
    out: Path
    resumed_out: Path


def moto_kinesis(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh moto with one single-shard stream, found by the job's boto3 through the environment."""
    import requests

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    correct_moto_resharding(monkeypatch)
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    return kinesis


@pytest.fixture(scope="module", params=["prism", pytest.param("flink", marks=pytest.mark.flink)])
def kinesis_run(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[KinesisRun]:
    runner = request.param
    monkeypatch = pytest.MonkeyPatch()
    kinesis = moto_kinesis(moto_endpoint, monkeypatch)
    tmp = tmp_path_factory.mktemp(f"kinesis-e2e-{runner}")
    checkpoint = tmp / "kinesis.json"
    sub = Subscription(kinesis)
    job = start_job(tmp / "first", checkpoint, runner)
    try:
        job.wait_for(f"kinesis: polling stream {STREAM}")
        sub.events_now(*sub.secret_reads(0, 4), sub.doc(resource="configmaps", name="cm-0"))
        malformed = sub.put(MALFORMED)
        [parent] = open_shards(kinesis)
        job.wait_for(f"reading shard {parent}")
        split(kinesis, parent)
        children = set(open_shards(kinesis))
        sub.events_now(*sub.secret_reads(4, 4))
        job.wait_for(f"shard {parent} of {STREAM} is closed and read to its end")
        merge(kinesis)  # the children may still hold records the job has not read
        [merged] = open_shards(kinesis)
        sub.events_now(*sub.secret_reads(8, 4), sub.doc(verb="create", resource="pods", subresource="exec"))
        job.wait_for(f"reading shard {merged}")
        first = job.metrics()
        first_records, first_events, last_event_ms = sub.records, sub.events, int(sub.last_time * 1000)
        # Put while no job runs; the next job reads them, and only them, from the checkpoint on.
        sub.events_now(*sub.secret_reads(20, 12))
        job = start_job(tmp / "second", checkpoint, runner)
        second = job.metrics()
        yield KinesisRun(
            first,
            second,
            first_records,
            sub.records - first_records,
            first_events,
            sub.events - first_events,
            last_event_ms,
            malformed,
            {parent, *children},
            json.loads(checkpoint.read_text()),
            tmp / "first",
            tmp / "second",
        )
    finally:
        job.stop()
        monkeypatch.undo()


def test_records_put_while_the_job_runs_are_read_exactly_once(kinesis_run: KinesisRun) -> None:
    counters = kinesis_run.first
    assert counters["read"] == kinesis_run.first_records
    assert counters["normalized"] == kinesis_run.first_events
    assert counters["dead_lettered"] == 1


def test_a_malformed_record_is_dead_lettered_with_stream_shard_and_sequence(kinesis_run: KinesisRun) -> None:
    [dead] = finished_documents(kinesis_run.out / "dead")
    assert dead["source"]["uri"] == f"kinesis://{STREAM}/{kinesis_run.malformed['ShardId']}"
    assert dead["source"]["message_id"] == kinesis_run.malformed["SequenceNumber"]


def test_an_enumeration_spanning_a_split_and_a_merge_fires_once(kinesis_run: KinesisRun) -> None:
    titles = [a["rule"]["name"] for a in finished_documents(kinesis_run.out / "alerts")]
    assert titles.count(ENUMERATION) == 1, titles
    assert EXEC in titles


def test_the_checkpoint_follows_the_resharding(kinesis_run: KinesisRun) -> None:
    # The first shard and the split's children are closed and drained; the merged child is read.
    assert set(kinesis_run.checkpoint["drained"]) == kinesis_run.parents
    assert len(kinesis_run.checkpoint["shards"]) == 1


def test_a_restarted_job_reads_only_what_was_put_after_the_checkpoint(kinesis_run: KinesisRun) -> None:
    counters = kinesis_run.second
    assert counters["read"] == kinesis_run.second_records
    assert counters["normalized"] == kinesis_run.second_events
    titles = [a["rule"]["name"] for a in finished_documents(kinesis_run.resumed_out / "alerts")]
    assert titles.count(ENUMERATION) == 1, titles


def test_the_watermark_comes_from_the_records_and_follows_the_clock_once_caught_up(
    kinesis_run: KinesisRun,
) -> None:
    metrics = kinesis_run.first
    assert abs(metrics["max_event_time_ms"] - kinesis_run.last_event_ms) <= 1  # float ms rounding
    # Idle for --kinesis-max-idle (10s) with every shard caught up: the watermark passed the last event.
    assert metrics["source_watermark_ms"] >= kinesis_run.last_event_ms, metrics


def test_a_killed_job_restarted_from_its_checkpoint_loses_no_record(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while records are in flight (read, handed on, not yet written to the alert files): the
    checkpoint file holds only what was written, so the next job reads them again (at least once)."""
    sub = Subscription(moto_kinesis(moto_endpoint, monkeypatch))
    checkpoint = tmp_path / "kinesis.json"
    job = start_job(tmp_path / "killed", checkpoint, "prism", *PROMPT_COMMIT)
    try:
        job.wait_for(f"kinesis: polling stream {STREAM}")
        sub.events_now(*sub.secret_reads(0, 6))
        sub.committed(checkpoint, job)  # written, then committed (a minute of event time later)
        committed = sub.records
        sub.events_now(*sub.secret_reads(100, 12))  # one enumeration, in flight when the job dies
        job.wait_for(f"reading shard {next(iter(sub.last))}")
        time.sleep(2)  # read and handed on, most likely; not yet written: the next minute is open
    finally:
        job.stop()  # SIGKILL to the job's process group
    restarted = start_job(tmp_path / "restarted", checkpoint, "prism", *PROMPT_COMMIT).metrics()
    in_flight = sub.records - committed
    assert in_flight <= restarted["read"] <= sub.records
    assert restarted["read"] == restarted["normalized"]
    titles = [a["rule"]["name"] for a in finished_documents(tmp_path / "restarted" / "alerts")]
    assert titles.count(ENUMERATION) == 1, titles
