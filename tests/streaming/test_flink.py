"""The pipeline's correlate/suppress state and timer code on Apache Flink gives the DirectRunner's alerts.

Flink runs embedded in Beam's Flink job server (`--flink_master=[local]`), whose jar comes from Maven
Central (.ci/flink/fetch-job-server.sh); the Python SDK harness runs in this process (LOOPBACK: no
Docker). Bounded input: Python unbounded sources on portable Flink have known problems.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streaming.harness import Collected, run_portable
from streaming.portable import flink_job_server_jar
from streaming.test_prism import reference, workload


@pytest.mark.flink
def test_flink_gives_the_direct_runner_alerts(tmp_path: Path) -> None:
    jar = flink_job_server_jar()
    events = workload()
    ruleset, plan, expected = reference(tmp_path, events, suppress=600.0)
    got = Collected(tmp_path / "flink.json")
    args = [
        "--runner=FlinkRunner",
        "--flink_master=[local]",
        f"--flink_job_server_jar={jar}",
        "--parallelism=1",
    ]
    run_portable(events, ruleset, plan, got, args, suppress=600.0)
    assert got.items == expected
