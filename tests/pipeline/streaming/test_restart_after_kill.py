"""A streaming job killed with SIGKILL mid-stream and restarted loses no alert, and Elasticsearch holds each
once: `bench/restart.py` against the batch run over the same input, for each source whose job resumes by
itself (the job writes to the real Elasticsearch and is killed after it has indexed alerts):

* tail: a `--tail` job on Prism; the log is rotated and appended to while it is down, and the restarted
  job reads the directory again;
* kafka: a Kafka job on Prism; more records are produced while it is down, and the restarted job resumes
  from its group's committed offsets, rebuilding the correlation and suppression state Prism does not
  keep by replaying the horizon before them (`--kafka-replay auto`); its partitions are one restriction
  with one watermark, so a partition read first does not make another's replayed records late;
* flink-checkpoint: a Kafka job on embedded Flink checkpointing every 2 s, killed once a checkpoint
  holding read positions has completed, restarted from the newest completed checkpoint: the source's
  positions and the correlation and suppression state come from it (no replay, no group offsets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.es_cluster import es_url_or_skip
from support.paths import REPO
from support.portable_runners import flink_job_server_jar, prism_binary

pytestmark = pytest.mark.slow

RUN_LIMIT_S = 600


@pytest.fixture(
    scope="module", params=["tail", "kafka", pytest.param("flink-checkpoint", marks=pytest.mark.flink)]
)
def restart(request: pytest.FixtureRequest) -> dict:
    es_url = es_url_or_skip()
    env = {**os.environ, "KUBESIGMA_ES_URL": es_url}
    bench = [sys.executable, str(REPO / "bench" / "restart.py")]
    if request.param == "tail":
        bench += ["--source", "tail"]
    else:
        env["KUBESIGMA_KAFKA_BOOTSTRAP"] = request.getfixturevalue("kafka").bootstrap  # or a skip
        bench += ["--source", "kafka"]
    if request.param == "flink-checkpoint":
        # The job server built (or skipped, failed under CI) as for the other Flink tests.
        env["KUBESIGMA_FLINK_JOB_SERVER_JAR"] = flink_job_server_jar()
        bench += ["--runner", "flink", "--checkpointing"]
    else:
        # Prism built (or skipped, failed under CI) as for the other Prism tests.
        env["KUBESIGMA_PRISM"] = prism_binary()
    proc = subprocess.run(
        [*bench, "--json", "--lines", "600"],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["checkpointing"] is (request.param == "flink-checkpoint")
    return result


def test_the_job_was_killed_mid_stream(restart: dict) -> None:
    assert restart["alerts_indexed_before_kill"] > 0
    assert restart["alerts_indexed_before_kill"] < restart["alerts"]
    if restart["checkpointing"]:
        # Killed after a checkpoint holding read positions completed, before the topic was read out.
        assert 0 < restart["offsets_committed_before_kill"] < restart["lines"], json.dumps(restart)


def test_the_restarted_job_resumes_as_its_runner_can(restart: dict) -> None:
    if not restart["checkpointing"]:
        assert restart["restart_exit_code"] == 0  # finished by itself (--tail-max-idle, --kafka-max-idle)
        return
    assert restart["restored_from"].startswith("chk-")
    assert restart["restore_logged"], json.dumps(restart)
    # Positions from the checkpoint: the restored source asked neither the group nor --kafka-start.
    assert not restart["restart_resolved_offsets"], json.dumps(restart)


def test_the_runs_together_lose_no_alert_of_the_batch_run(restart: dict) -> None:
    assert restart["alerts"] > 0
    assert restart["lost"] == 0, json.dumps(restart)
    assert restart["unexpected"] == 0, json.dumps(restart)


def test_elasticsearch_holds_each_alert_once(restart: dict) -> None:
    assert restart["duplicates_in_es"] == 0, json.dumps(restart)
    assert restart["missing_in_es"] == 0, json.dumps(restart)
