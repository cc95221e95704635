"""`kubesigma run --streaming --tail DIR` end to end, in its own process, on Beam's Prism runner.

The test plays kube-apiserver: while the job runs it appends audit Events (at the wall-clock time, as a
live API server writes them), leaves a line half written, and rotates `audit.log` the way lumberjack does
(rename to `audit-<time>.log` with lines still unread in it, then a new `audit.log`). A secret enumeration
spans the rotation, so the correlation only fires if both files are followed. Prism is built from the Go
module proxy (.ci/prism/build-prism.sh); the Python SDK harness runs in the job's process (LOOPBACK).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from support.audit_records import audit_event
from support.beam_runs import finished_documents
from support.portable_runners import prism_binary
from support.streaming_job import RUN_LIMIT_S, Job
from support.streaming_job import start_job as start

pytestmark = pytest.mark.slow

START_LIMIT_S = 120
ENUMERATION = "Kubernetes Secret Enumeration By One Identity"
EXEC = "Exec Or Attach Into A Pod Container"


class Apiserver:
    """Writes audit lines into a directory the way kube-apiserver's log backend does."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.n = 0
        self.lines = 0
        self.last_time = 0.0

    @property
    def log(self) -> Path:
        return self.directory / "audit.log"

    def doc(self, **kw: Any) -> bytes:
        self.n += 1
        self.lines += 1
        self.last_time = time.time()
        return orjson.dumps(audit_event(1000 + self.n, at=self.last_time, **kw)) + b"\n"

    def write(self, *lines: bytes) -> None:
        with self.log.open("ab") as handle:
            for line in lines:
                handle.write(line)
                handle.flush()

    def secret_reads(self, first: int, count: int) -> list[bytes]:
        return [self.doc(name=f"secret-{i}") for i in range(first, first + count)]

    def controller_reads(self, count: int) -> list[bytes]:
        """Reads by a system identity from a public address: a single-event rule fires on each, and
        suppression (on by default in streaming) folds the repeats into a follow-up alert."""
        return [
            self.doc(resource="configmaps", name=f"cm-{i}", user="system:serviceaccount:kube-system:default")
            for i in range(count)
        ]

    def rotate(self) -> None:
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
        self.log.rename(self.directory / f"audit-{stamp}.000.log")


def start_job(tmp: Path, audit_dir: Path, *extra: str) -> Job:
    """`kubesigma run --streaming --tail` on Prism."""
    argv = [
        "--streaming", "--tail", str(audit_dir), "--tail-interval", "0.5s",
        "--runner=PrismRunner", f"--prism_location={prism_binary()}",
        "--alerts-out", str(tmp / "alerts"), "--dead-letter", str(tmp / "dead"),
        "--metrics-out", str(tmp / "metrics.json"), *extra,
    ]  # fmt: skip
    return start(argv, tmp / "job.log")


@dataclass
class TailRun:
    returncode: int
    alerts: list[dict[str, Any]]
    metrics: dict[str, Any]
    lines_written: int
    last_event_ms: int
    audit_dir: Path
    log: str


@pytest.fixture(scope="module")
def tail_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TailRun]:
    tmp = tmp_path_factory.mktemp("tail-e2e")
    audit_dir = tmp / "audit"
    audit_dir.mkdir()
    api = Apiserver(audit_dir)
    job = start_job(tmp, audit_dir, "--tail-max-idle", "8s")
    try:
        job.wait_for("tail: following", START_LIMIT_S)
        api.write(*api.controller_reads(3), *api.secret_reads(0, 4))
        half = api.doc(name="secret-4")
        api.write(half[:50])  # a line still being written: must wait for its end, not be read in two
        time.sleep(2)
        api.write(
            half[50:],
            *api.secret_reads(5, 2),
            api.doc(verb="create", resource="pods", subresource="exec", name="web-0"),
        )
        api.rotate()  # rotated with lines the job has not read yet, as lumberjack does
        api.write(*api.secret_reads(7, 3))
        time.sleep(2)
        api.write(*api.secret_reads(10, 2), *api.controller_reads(2))
        returncode = job.wait()
    finally:
        job.stop()
    metrics_file = tmp / "metrics.json"
    metrics = orjson.loads(metrics_file.read_bytes()) if metrics_file.exists() else {}
    yield TailRun(
        returncode,
        finished_documents(tmp / "alerts"),
        metrics,
        api.lines,
        int(api.last_time * 1000),
        audit_dir,
        job.tail(),
    )


def test_the_job_stops_by_itself_once_the_directory_is_idle(tail_run: TailRun) -> None:
    assert tail_run.returncode == 0, tail_run.log


def test_every_line_appended_or_rotated_is_read_exactly_once(tail_run: TailRun) -> None:
    assert tail_run.metrics["read"] == tail_run.lines_written, tail_run.log
    assert tail_run.metrics["dead_lettered"] == 0


def test_a_secret_enumeration_spanning_the_rotation_fires_once(tail_run: TailRun) -> None:
    titles = [a["rule"]["name"] for a in tail_run.alerts]
    assert titles.count(ENUMERATION) == 1, titles


def test_single_event_rules_alert_on_tailed_lines(tail_run: TailRun) -> None:
    assert EXEC in {a["rule"]["name"] for a in tail_run.alerts}


def test_no_alert_is_written_twice(tail_run: TailRun) -> None:
    ids = [a["kubesigma"]["alert_id"] for a in tail_run.alerts]
    assert ids and len(ids) == len(set(ids))


def test_the_source_watermark_and_processing_lag_are_reported(tail_run: TailRun) -> None:
    metrics = tail_run.metrics
    # The tail's watermark reached the last line written (it follows the wall clock once idle).
    assert metrics["source_watermark_ms"] >= tail_run.last_event_ms, metrics
    assert abs(metrics["max_event_time_ms"] - tail_run.last_event_ms) <= 1  # float ms rounding
    lag = metrics["processing_lag_ms"]
    assert lag["count"] >= 1 and lag["max"] >= lag["min"] >= 0


def batch_alerts(audit_dir: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubesigma run` in batch over the files the tail followed, suppressing as streaming does."""
    from kubesigma.pipeline.run import run

    out = tmp_path / "batch.jsonl"
    argv = [
        "--input", str(audit_dir / "audit*.log"), "--suppress-window", "10m",
        "--alerts-out", str(out), "--dead-letter", str(tmp_path / "dead.jsonl"),
    ]  # fmt: skip
    with (tmp_path / "summary.txt").open("w") as summary:
        run(argv, summary)
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def is_follow_up(alert: dict[str, Any]) -> bool:
    return "suppression" in alert["kubesigma"]


def test_tailed_alerts_are_the_batch_run_first_alerts_over_the_same_files(
    tail_run: TailRun, tmp_path: Path
) -> None:
    batch = {
        a["kubesigma"]["alert_id"] for a in batch_alerts(tail_run.audit_dir, tmp_path) if not is_follow_up(a)
    }
    assert {a["kubesigma"]["alert_id"] for a in tail_run.alerts if not is_follow_up(a)} == batch


def test_every_alert_the_job_built_reaches_the_alert_files(tail_run: TailRun) -> None:
    assert tail_run.metrics["alerts_folded"] > 0
    assert len(tail_run.alerts) == tail_run.metrics["alerts"]


def test_alerts_are_written_while_the_tail_is_still_running(tmp_path: Path) -> None:
    """No max-idle: the job runs until killed. With nothing new to read the watermark follows the
    wall clock, so the minute's alert file is finished while the job still runs (about a minute)."""
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    api = Apiserver(audit_dir)
    job = start_job(tmp_path, audit_dir)
    try:
        job.wait_for("tail: following", START_LIMIT_S)
        api.write(*api.secret_reads(0, 12))
        deadline = time.monotonic() + RUN_LIMIT_S
        while time.monotonic() < deadline and job.proc.poll() is None:
            titles = [a["rule"]["name"] for a in finished_documents(tmp_path / "alerts")]
            if ENUMERATION in titles:
                break
            time.sleep(1)
        assert job.proc.poll() is None, f"the job ended on its own:\n{job.tail()}"
        assert ENUMERATION in [a["rule"]["name"] for a in finished_documents(tmp_path / "alerts")], job.tail()
    finally:
        job.stop()
