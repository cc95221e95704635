"""`bench/fuzz.py` as CI runs it: a short campaign through every stage, in a subprocess."""

from __future__ import annotations

import subprocess
import sys

import orjson

from support.paths import REPO, bench_module


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


def test_the_cpu_bound_judges_each_record_read_not_the_file() -> None:
    fuzz = bench_module("fuzz")
    mib = fuzz.MiB
    counts = fuzz.Counts(read=5, replay_seconds=0.005)
    # A 2.4 MB record (over 1 MiB: not bound) beside two small ones: only the small ones are judged.
    counts.spans = [(0.200, int(2.4 * mib), 1), (0.001, 2_000, 1), (0.030, 900, 1)]
    assert round(counts.slowest_ms(), 3) == 31.0  # the slowest small record, with its share of the replay
    # An EventList line over 1 MiB holding records of 800 KB each: each is judged, the line shared out.
    counts.spans = [(0.150, int(2.4 * mib), 3), (0.001, 2_000, 1), (0.001, 2_000, 1)]
    assert round(counts.slowest_ms(), 3) == 51.0
    counts.spans = [(0.200, int(2.4 * mib), 1)]
    assert counts.slowest_ms() is None  # nothing up to 1 MiB: nothing to bound
