"""`bench/fuzz.py` as CI runs it: a short campaign through every stage, in a subprocess."""

from __future__ import annotations

import subprocess
import sys

import orjson

from support.paths import REPO


def test_a_short_campaign_reports_every_invariant_and_finds_nothing() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fuzz.py"),
            "--records",
            "300",
            "--seed",
            "5",
            "--check",
            "--json",
        ],
        capture_output=True,
        timeout=600,
        check=False,
    )
    result = orjson.loads(done.stdout.splitlines()[-1])
    assert done.returncode == 0, result["findings"]
    assert result["records"] == 300
    assert result["crashes"] == 0
    assert {"counts", "credential", "coder"}.isdisjoint(result["violations"])
    # Every format among the seeds, and the outcomes of all three kinds.
    assert set(result["formats"]) >= {
        "event",
        "event_list",
        "gke_logentry",
        "cloudwatch",
        "aks",
        "pubsub",
        "sample",
    }
    assert result["outcomes"]["normalized"] > 0 and result["outcomes"]["dead_lettered"] > 0
    assert result["slowest_ms"] > 0
