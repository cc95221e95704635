"""The pipeline, its correlate/suppress state and timer code included, on Apache Flink gives the
DirectRunner's alerts.

Flink 1.19 runs embedded in Beam's Flink job server (`--flink_master=[local]`). Maven Central does not
serve Beam's ready-made job-server jar here for any Beam from 2.63 on, so .ci/flink/job-server.sh builds
the same jar from Beam's published Flink runner module (2.62.0, the newest that resolves). The Python SDK
harness runs in this process (LOOPBACK: no Docker). Bounded input: Python unbounded sources on portable
Flink have known problems.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from kubesigma.connectors.simulated_cluster import generate, write_jsonl
from support.beam_runs import Collected, direct_runner_alerts, run_portable, secret_read_workload
from support.portable_runners import flink_job_server_jar

pytestmark = pytest.mark.flink


def flink_args(jar: str) -> list[str]:
    return [
        "--runner=FlinkRunner",
        "--flink_master=[local]",
        "--flink_version=1.19",
        f"--flink_job_server_jar={jar}",
        "--parallelism=1",
    ]


def test_flink_gives_the_direct_runner_alerts(tmp_path: Path) -> None:
    jar = flink_job_server_jar()
    events = secret_read_workload()
    ruleset, plan, expected = direct_runner_alerts(tmp_path, events, suppress=600.0)
    got = Collected(tmp_path / "flink.json")
    run_portable(events, ruleset, plan, got, flink_args(jar), suppress=600.0)
    assert len(expected) == 2
    assert got.items == expected


def run_cli(args: list[str], out: Path) -> tuple[str, list[dict]]:
    exe = shutil.which("kubesigma") or str(Path(sys.executable).with_name("kubesigma"))
    alerts = out / "alerts.jsonl"
    cmd = [exe, "run", *args, f"--alerts-out={alerts}", f"--dead-letter={out / 'dead.jsonl'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()[0], [orjson.loads(line) for line in alerts.read_bytes().splitlines()]


def test_kubesigma_run_on_flink_gives_the_fnapi_runner_alerts(tmp_path: Path) -> None:
    """The whole `kubesigma run` job (read, decode, detect, correlate, suppress, write) on Flink."""
    jar = flink_job_server_jar()
    demo = tmp_path / "demo.jsonl"
    # The demo log as `kubesigma demo generate --seed 7 --events 3000 --cluster demo` writes it.
    assert write_jsonl(generate(7, 3000, attack_ratio=0.0, cluster="demo"), demo) == 3000
    job = [f"--input={demo}", "--suppress-window=600"]
    (tmp_path / "fnapi").mkdir()
    (tmp_path / "flink").mkdir()
    summary, direct = run_cli([*job, "--runner=FnApiRunner"], tmp_path / "fnapi")
    flink_summary, on_flink = run_cli(
        [*job, *flink_args(jar), "--environment_type=LOOPBACK"], tmp_path / "flink"
    )

    assert flink_summary == summary
    assert sorted(a["kubesigma"]["alert_id"] for a in on_flink) == sorted(
        a["kubesigma"]["alert_id"] for a in direct
    )
    assert any("correlation" in a["kubesigma"] for a in direct), (
        "the workload should raise a correlation alert"
    )
