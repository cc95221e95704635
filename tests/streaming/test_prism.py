"""The same correlate/suppress state and timer code on Beam's Prism runner gives the DirectRunner's alerts.

Prism is Beam's Go runner, built here from the Go module proxy (.ci/prism/build-prism.sh); the Python
SDK harness runs in this process (LOOPBACK: no Docker).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streaming.audit_records import T0, secret_reads
from streaming.harness import Collected, load_rules, run_batch, run_portable
from streaming.portable import prism_binary


def workload():
    return (
        secret_reads(T0, 25, step=3)
        + secret_reads(T0 + 30, 12, step=40, user="bob", first_n=200)
        + secret_reads(T0 + 5, 10, step=2, user="carol", first_n=300, distinct=False)
    )


def reference(tmp_path: Path, events, **kw):
    ruleset, plan = load_rules(tmp_path)
    expected = Collected(tmp_path / "direct.json")
    run_batch(events, ruleset, plan, expected, **kw)
    return ruleset, plan, expected.items


@pytest.mark.parametrize("suppress", [None, 600.0])
def test_prism_gives_the_direct_runner_alerts(tmp_path: Path, suppress: float | None) -> None:
    binary = prism_binary()
    events = workload()
    ruleset, plan, expected = reference(tmp_path, events, suppress=suppress)
    got = Collected(tmp_path / "prism.json")
    run_portable(
        events, ruleset, plan, got, ["--runner=PrismRunner", f"--prism_location={binary}"], suppress=suppress
    )
    assert len(expected) == 2
    assert got.items == expected
