"""Shared fixtures: where the third-party datasets live (used in place, never copied)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.paths import DATASETS


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.fail(f"third-party datasets not found at {DATASETS} (expected ../shared/datasets)")
    return DATASETS


# AWS through moto's server: the only AWS peer that runs here (a test double; tests that use it say so).
MOTO_REGION = "eu-west-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AWS default chain pointed at a freshly reset moto: credentials, region and endpoint from the
    environment, as boto3 and Beam's S3 filesystem read them."""
    import requests

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", MOTO_REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    return moto_endpoint


@pytest.fixture(scope="session")
def kafka() -> Any:
    """The real Kafka broker of `make kafka-up` (support/kafka_broker.py)."""
    from support.kafka_broker import broker

    return broker()
