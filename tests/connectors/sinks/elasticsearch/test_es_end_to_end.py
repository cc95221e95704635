"""The issue's acceptance check: the same input run twice through `kubesigma run --es-url` leaves exactly
as many alert documents as distinct `kubesigma.alert_id`s in the JSON output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from kubesigma.pipeline.cli import main

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]
RUN_LIMIT_S = 240  # a hung run fails this test instead of using up CI's whole time budget


def run_cli(argv: list[str], log_path: Any) -> int:
    """`kubesigma run` in its own process group, so a hung run is stopped whole."""
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubesigma.pipeline.cli", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=RUN_LIMIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"kubesigma run did not finish in {RUN_LIMIT_S} s")


def test_the_same_input_run_twice_with_es_url_leaves_one_document_per_distinct_alert_id(
    es, es_url, prefix, tmp_path, ids_in
):
    audit = tmp_path / "audit.jsonl"
    assert main(["demo", "generate", "--out", str(audit), "--seed", "7", "--events", "500"]) == 0
    alert_ids: list[str] = []
    for attempt in range(2):
        alerts_out = tmp_path / f"alerts-{attempt}.jsonl"
        argv = [
            "run", "--input", str(audit), "--alerts-out", str(alerts_out),
            "--dead-letter", str(tmp_path / f"dead-{attempt}.jsonl"),
            "--es-url", es_url, "--es-index-prefix", prefix, "--es-index-events",
        ]  # fmt: skip
        log = tmp_path / f"run-{attempt}.log"
        assert run_cli(argv, log) == 0, log.read_text()[-2000:]
        assert "index template" in log.read_text()
        assert (tmp_path / f"dead-{attempt}.jsonl").read_text() == ""
        alert_ids += [
            json.loads(line)["kubesigma"]["alert_id"] for line in alerts_out.read_text().splitlines()
        ]
    assert alert_ids, "the demo run produced no alert"
    indexed = ids_in(es, prefix)
    assert len(indexed) == len(set(indexed))
    assert set(indexed) == set(alert_ids)
    events = ids_in(es, prefix, "events")
    assert len(events) == len(set(events)) == 500
