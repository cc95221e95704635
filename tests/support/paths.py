"""Where the tests find the repository and the third-party datasets (read in place, never copied)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DATASETS = (REPO.parent / "shared" / "datasets").resolve()
FALCO_TRACES = DATASETS / "falco-k8s-audit" / "traces"
FORMAT_SAMPLES = DATASETS / "format-samples"
SIGMAHQ_RULES = DATASETS / "sigmahq-rules" / "rules"
SHIPPED_RULES = REPO / "detections" / "rules"
SHIPPED_CORRELATIONS = REPO / "detections" / "correlation" / "rules"


def bench_module(name: str) -> ModuleType:
    """A module of bench/, loaded from its file: bench/ on sys.path would let bench/elasticsearch.py
    shadow the Elasticsearch client for every test that runs after this one."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
