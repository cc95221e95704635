"""Where the tests find the repository and the third-party datasets (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATASETS = (REPO.parent / "shared" / "datasets").resolve()
FALCO_TRACES = DATASETS / "falco-k8s-audit" / "traces"
FORMAT_SAMPLES = DATASETS / "format-samples"
SIGMAHQ_RULES = DATASETS / "sigmahq-rules" / "rules"
SHIPPED_RULES = REPO / "detections" / "rules"
SHIPPED_CORRELATIONS = REPO / "detections" / "correlation" / "rules"
