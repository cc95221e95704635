"""Fixtures for the cloud connector tests: the Falco traces (read in place), the CloudWatch delivery file
built from them, and an exec-into-pod event with a large request object for the cut-message tests.
(Fixtures, not an importable module: `tests/connectors` would shadow the `connectors` role folder.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesigma.connectors.delivery import write_cloudwatch_gzip
from support.audit_records import audit_event
from support.falco_traces import falco_events
from support.paths import FORMAT_SAMPLES

BAD_TRACE_RECORD = ("fal_01_003.json", 1)  # {"kind": 0}: Falco rejects it, so do we


def write_falco_cloudwatch_fixture(tmp_path: Path, per_envelope: int = 7) -> Path:
    """The Falco events as an EKS cluster's CloudWatch subscription envelopes, one per line, gzip (what a
    Firehose delivery to S3 holds): `kubesigma run --input` reads it like any file."""
    return write_cloudwatch_gzip(
        tmp_path / "falco-eks-cloudwatch.jsonl.gz",
        falco_events(),
        per_envelope=per_envelope,
        cluster="falco-eks",
        account="111122223333",
    )


def exec_into_pod_event(padding: int = 300_000) -> dict[str, Any]:
    """`kubectl exec` into a pod in kube-system by a user, the request object padded past CloudWatch's
    256 KiB event limit (as a large PodExecOptions never is, but a Secret or ConfigMap often is)."""
    return audit_event(
        verb="create",
        resource="pods",
        namespace="kube-system",
        name="etcd-0",
        subresource="exec",
        uri="/api/v1/namespaces/kube-system/pods/etcd-0/exec?command=%2Fbin%2Fsh&stdin=true&tty=true",
        user="mallory@example.com",
        ip="203.0.113.9",
        user_agent="kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef",
        code=101,
        took=0.25,
        request_object={
            "kind": "PodExecOptions",
            "apiVersion": "v1",
            "stdin": True,
            "tty": True,
            "container": "etcd",
            "command": ["/bin/sh", "-c", "x" * padding],
        },
        auditID="5e1f4a3c-7d2b-4f7e-9b1a-2c3d4e5f6a7b",
    )


@pytest.fixture(scope="session")
def format_samples() -> Path:
    return FORMAT_SAMPLES


@pytest.fixture(scope="session")
def falco() -> list[dict[str, Any]]:
    return falco_events()


@pytest.fixture
def falco_cloudwatch_gz(tmp_path: Path) -> Path:
    return write_falco_cloudwatch_fixture(tmp_path)


@pytest.fixture
def exec_event() -> dict[str, Any]:
    return exec_into_pod_event()
