"""`kubesigma run --workers 2`: the per-event stages in two worker processes give the same alerts, dead
letters and counters as one, correlations across the two halves of the input included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubesigma.connectors.simulated_cluster import generate
from kubesigma.connectors.sources.ranges import MIN_RANGE

KUBESIGMA = str(Path(sys.executable).with_name("kubesigma"))


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo cluster's log, large enough to be cut in two byte ranges, with a cut record in it."""
    path = tmp_path_factory.mktemp("workers") / "audit.log"
    with path.open("wb") as out:
        for i, event in enumerate(generate(7, 9000)):
            line = orjson.dumps(event)
            out.write((line[:200] if i == 4000 else line) + b"\n")
    assert path.stat().st_size >= 2 * MIN_RANGE
    return path


def kubesigma_run(log: Path, out: Path, *extra: str) -> dict[str, Any]:
    out.mkdir()
    done = subprocess.run(
        [KUBESIGMA, "run", "--input", str(log), "--cluster-name", "demo",
         "--alerts-out", str(out / "alerts.jsonl"), "--dead-letter", str(out / "dead.jsonl"),
         "--metrics-out", str(out / "metrics.json"), *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        "alerts": sorted(
            (orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()),
            key=lambda alert: alert["kubesigma"]["alert_id"],
        ),
        "dead": sorted((out / "dead.jsonl").read_bytes().splitlines()),
        "metrics": orjson.loads((out / "metrics.json").read_bytes()),
        "summary": done.stdout,
    }


def test_two_workers_give_the_same_alerts_dead_letters_and_counters(demo_log: Path, tmp_path: Path) -> None:
    one = kubesigma_run(demo_log, tmp_path / "one")
    two = kubesigma_run(demo_log, tmp_path / "two", "--workers", "2")
    ids = [a["kubesigma"]["alert_id"] for a in one["alerts"]]
    assert sorted(ids) == sorted(a["kubesigma"]["alert_id"] for a in two["alerts"])
    assert any(a["kubesigma"].get("correlation") for a in one["alerts"])  # correlations were compared
    assert one["alerts"] == two["alerts"]  # whole documents, sources (line, byte offset) included
    assert one["dead"] == two["dead"] and len(one["dead"]) == 1
    assert one["metrics"] == two["metrics"] and one["metrics"]["read"] == 9000
    assert one["summary"] == two["summary"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--workers", "2", "--streaming", "--tail", "."], "--workers applies to batch runs"),
    ],
)
def test_bad_worker_options_fail_fast_with_one_line(
    demo_log: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    done = subprocess.run(
        [KUBESIGMA, "run", "--input", str(demo_log), "--alerts-out", str(tmp_path / "a"),
         "--dead-letter", str(tmp_path / "d"), *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
