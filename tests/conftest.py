"""Shared fixtures: where the third-party datasets live (used in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASETS = (ROOT.parent / "shared" / "datasets").resolve()
FALCO_TRACES = DATASETS / "falco-k8s-audit" / "traces"


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.fail(f"third-party datasets not found at {DATASETS} (expected ../shared/datasets)")
    return DATASETS
