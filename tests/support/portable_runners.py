"""Locating the real engines the portability tests run on (built or fetched by the .ci scripts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from support.paths import REPO


def _script(path: str, env_var: str, what: str) -> str:
    given = os.environ.get(env_var)
    if given:
        return given
    script = REPO / path
    try:
        out = subprocess.run(
            ["bash", str(script)],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
            env={**os.environ, "PYTHON": sys.executable},
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        detail = getattr(err, "stderr", "") or ""
        reason = f"{what} unavailable: {script.name} failed: {detail.strip()[-400:]}"
        # Both engines build here; in CI a failure to build is a failure, not a quiet skip.
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return out.stdout.strip().splitlines()[-1]


def prism_binary() -> str:
    if not shutil.which("go") and not os.environ.get("KUBESIGMA_PRISM"):
        pytest.skip("no Go toolchain to build Prism (set KUBESIGMA_PRISM to a prism binary)")
    return _script(".ci/prism/build-prism.sh", "KUBESIGMA_PRISM", "Prism")


def flink_job_server_jar() -> str:
    if not shutil.which("mvn") and not os.environ.get("KUBESIGMA_FLINK_JOB_SERVER_JAR"):
        pytest.skip("no Maven to build the Flink job server (set KUBESIGMA_FLINK_JOB_SERVER_JAR)")
    return _script(".ci/flink/job-server.sh", "KUBESIGMA_FLINK_JOB_SERVER_JAR", "Flink job server")


def flink_operator_crd() -> str:
    """The Flink Kubernetes Operator's FlinkDeployment CRD, extracted from its API jar on Maven Central."""
    if not shutil.which("mvn") and not os.environ.get("KUBESIGMA_FLINK_CRD"):
        pytest.skip("no Maven to fetch the Flink operator's CRD (set KUBESIGMA_FLINK_CRD to its YAML)")
    return _script(".ci/deploy/flink-crd.sh", "KUBESIGMA_FLINK_CRD", "Flink operator CRD")
