"""The issue's acceptance check on today's pipeline: alerts from a real `kubesigma run`, indexed twice,
leave exactly as many documents as distinct `kubesigma.alert_id`s in the JSON output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from kubesigma.connectors.sinks.elasticsearch import install_templates
from kubesigma.pipeline.cli import main

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]
RUN_LIMIT_S = 240  # a hung run fails this test instead of using up CI's whole time budget


def test_alerts_of_a_run_indexed_twice_leave_one_document_per_distinct_alert_id(
    es, config, tmp_path, run_sink, ids_in
):
    audit, alerts_out = tmp_path / "audit.jsonl", tmp_path / "alerts.jsonl"
    assert main(["demo", "generate", "--out", str(audit), "--seed", "7", "--events", "500"]) == 0
    argv = [
        "run",
        "--input",
        str(audit),
        "--alerts-out",
        str(alerts_out),
        "--dead-letter",
        str(tmp_path / "d.jsonl"),
    ]
    log = tmp_path / "run.log"
    with log.open("w") as out:
        # its own process group: on timeout the whole run, and anything it started, is stopped
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubesigma.pipeline.cli", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=RUN_LIMIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"kubesigma run over 500 demo events did not finish in {RUN_LIMIT_S} s")
    assert proc.returncode == 0, log.read_text()[-2000:]
    docs = [json.loads(line) for line in alerts_out.read_text().splitlines() if line.strip()]
    assert docs, "the demo run produced no alert"
    install_templates(config)
    for _ in range(2):
        _, dead = run_sink(docs, config, tmp_path)
        assert dead == []
    ids = ids_in(es, config.index_prefix)
    assert sorted(ids) == sorted({d["kubesigma"]["alert_id"] for d in docs})
