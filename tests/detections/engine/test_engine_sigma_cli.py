"""sigma-cli discovers the kubesigma pipeline plugin and converts rules onto the indexed alert fields.

Needs the plugin path set up once per environment: `python -m sigma.pipelines.kubesigma._devinstall`
(see that module: setuptools' editable finder hides the plugin from sigma-cli's listing).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

SIGMA = shutil.which("sigma") or str(__import__("pathlib").Path(sys.executable).with_name("sigma"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIGMA, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def plugin_path():
    subprocess.run(
        [sys.executable, "-m", "sigma.pipelines.kubesigma._devinstall"],
        check=True,
        timeout=60,
        capture_output=True,
    )


def test_sigma_lists_the_kubesigma_pipelines():
    result = run("list", "pipelines")
    assert result.returncode == 0, result.stderr
    assert "| kubesigma " in result.stdout and "kubesigma_raw" in result.stdout


def test_sigma_convert_maps_sigmahq_rule_onto_indexed_fields(datasets):
    rule = (
        datasets
        / "sigmahq-rules"
        / "rules"
        / "application"
        / "kubernetes"
        / "audit"
        / "kubernetes_audit_hostpath_mount.yml"
    )
    result = run("convert", "-t", "lucene", "-p", "kubesigma", str(rule))
    assert result.returncode == 0, result.stderr
    assert "kubernetes.audit.verb:create" in result.stdout
    assert "kubernetes.audit.requestObject.spec.volumes.hostPath.path:*" in result.stdout


def test_sigma_convert_prefixes_gcp_rules_with_gcp_audit(datasets):
    rule = (
        datasets
        / "sigmahq-rules"
        / "rules"
        / "cloud"
        / "gcp"
        / "audit"
        / "gcp_kubernetes_secrets_modified_or_deleted.yml"
    )
    result = run("convert", "-t", "lucene", "-p", "kubesigma", str(rule))
    assert result.returncode == 0, result.stderr
    assert "gcp.audit.protoPayload.methodName:(io.k8s.core.v*.secrets.create" in result.stdout
