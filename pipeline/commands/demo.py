"""`kubesigma demo generate`: write the deterministic demo audit log of a simulated cluster
(`kubesigma.connectors.simulated_cluster`)."""

from __future__ import annotations

import sys
from pathlib import Path

from kubesigma.connectors.simulated_cluster import DEFAULT_CLUSTER, generate, write_jsonl

DEFAULT_SEED = 7
DEFAULT_EVENTS = 5000


def run_generate(
    out: str, seed: int = DEFAULT_SEED, events: int = DEFAULT_EVENTS, cluster: str = DEFAULT_CLUSTER
) -> int:
    """Write `events` audit Events as JSON lines to `out`; exit status 0, or 2 for bad options."""
    if events < 200:
        # Below this the story has no room for every embedded attack.
        print(f"kubesigma demo generate: --events must be at least 200, got {events}", file=sys.stderr)
        return 2
    target = Path(out)
    if not target.parent.is_dir():
        print(f"kubesigma demo generate: directory of --out {out!r} does not exist", file=sys.stderr)
        return 2
    # The demo shows each attack once; the benchmark is what adds repeated attacks.
    written = write_jsonl(generate(seed, events, attack_ratio=0.0, cluster=cluster), target)
    print(f"wrote {written} audit events (seed {seed}, cluster {cluster}) to {target}")
    return 0
