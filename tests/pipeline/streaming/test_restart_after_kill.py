"""A streaming job killed with SIGKILL mid-stream and restarted loses no alert, and Elasticsearch holds each
once: `bench/restart.py` (a `--tail` job on Prism writing to the real Elasticsearch, killed after it has
indexed alerts, the log rotated and appended to while it is down, then restarted) against the batch run
over the same files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.es_cluster import es_url_or_skip
from support.paths import REPO
from support.portable_runners import prism_binary

pytestmark = pytest.mark.slow

RUN_LIMIT_S = 600


@pytest.fixture(scope="module")
def restart() -> dict:
    es_url = es_url_or_skip()
    prism = prism_binary()  # built (or skipped, failed under CI) as for the other Prism tests
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "restart.py"), "--json", "--lines", "600"],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
        env={**os.environ, "KUBESIGMA_ES_URL": es_url, "KUBESIGMA_PRISM": prism},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_the_job_was_killed_mid_stream(restart: dict) -> None:
    assert restart["alerts_indexed_before_kill"] > 0
    assert restart["alerts_indexed_before_kill"] < restart["alerts"]


def test_the_runs_together_lose_no_alert_of_the_batch_run(restart: dict) -> None:
    assert restart["alerts"] > 0
    assert restart["lost"] == 0
    assert restart["unexpected"] == 0


def test_elasticsearch_holds_each_alert_once(restart: dict) -> None:
    assert restart["duplicates_in_es"] == 0
    assert restart["missing_in_es"] == 0
