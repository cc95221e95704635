"""The same correlate/suppress state and timer code on Beam's Prism runner gives the DirectRunner's alerts.

Prism is Beam's Go runner, built here from the Go module proxy (.ci/prism/build-prism.sh); the Python
SDK harness runs in this process (LOOPBACK: no Docker).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.beam_runs import Collected, direct_runner_alerts, run_portable, secret_read_workload
from support.portable_runners import prism_binary


@pytest.mark.parametrize("suppress", [None, 600.0])
def test_prism_gives_the_direct_runner_alerts(tmp_path: Path, suppress: float | None) -> None:
    binary = prism_binary()
    events = secret_read_workload()
    ruleset, plan, expected = direct_runner_alerts(tmp_path, events, suppress=suppress)
    got = Collected(tmp_path / "prism.json")
    run_portable(
        events, ruleset, plan, got, ["--runner=PrismRunner", f"--prism_location={binary}"], suppress=suppress
    )
    assert len(expected) == 2
    assert got.items == expected
