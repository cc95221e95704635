"""The Flink Kubernetes Operator manifests: the FlinkDeployment is one the operator's own CRD accepts, its
driver command is a `kubesigma run` kubesigma accepts, and it points at what the image recipe puts in place.

No Kubernetes cluster, operator or Docker engine runs here: the CRD comes from the operator's API jar on
Maven Central (.ci/deploy/flink-crd.sh) and is enforced with jsonschema; the job-server jar is the one
the Flink runner tests use.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shlex
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy.k8s_schema import crd_validator, errors

from kubesigma.pipeline.options import validate_args
from kubesigma.pipeline.run import pipeline_options, submitted_only
from support.paths import REPO
from support.portable_runners import flink_job_server_jar, flink_operator_crd

FLINK = REPO / "terraform" / "flink"
MANIFESTS = FLINK / "manifests"
OBJECT_STORAGE = re.compile(r"^(s3|gs)://[a-z0-9][a-z0-9.-]+/")


def documents() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    ]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents() if doc["kind"] == kind]


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    (found,) = of_kind("FlinkDeployment")
    return found


@pytest.fixture(scope="module")
def validator() -> Any:
    return crd_validator(flink_operator_crd(), "v1beta1")


def driver_command(deployment: dict[str, Any]) -> list[str]:
    args = deployment["spec"]["job"]["args"]
    return shlex.split(args[args.index("--driver-cmd") + 1])


def test_flink_deployment_is_valid_for_the_operators_crd(deployment, validator) -> None:
    assert errors(validator, deployment) == []


def test_the_schema_check_refuses_unknown_fields_and_values(deployment, validator) -> None:
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["job"]["upgradeMod"] = misspelt["spec"]["job"].pop("upgradeMode")
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["job"]["upgradeMode"] = "snapshot"
    wrong["spec"]["podTemplate"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = "yes"
    assert any("upgradeMod" in e for e in errors(validator, misspelt))
    found = errors(validator, wrong)
    assert any("snapshot" in e for e in found) and any("runAsNonRoot" in e for e in found)


def test_the_driver_is_a_kubesigma_run_that_kubesigma_accepts(deployment) -> None:
    command = driver_command(deployment)
    assert command[:5] == ["python", "-m", "kubesigma.pipeline.cli", "run", "--streaming"]
    # FlinkPortableClientEntryPoint appends the endpoint of the job server it started.
    argv = [*command[4:], "--job_endpoint=localhost:8099"]
    validate_args(argv)
    options = pipeline_options(argv)
    # The entry point returns once the job is handed over; the driver must not wait for a streaming job.
    assert submitted_only(options)
    assert "--environment_type=PROCESS" in argv
    assert '--environment_config={"command":"/opt/apache/beam/boot"}' in argv
    for name in ("--alerts-out", "--dead-letter"):
        (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"{name}=")]
        assert OBJECT_STORAGE.match(value), value


def test_state_lives_in_object_storage_and_upgrades_go_through_savepoints(deployment) -> None:
    spec = deployment["spec"]
    conf = spec["flinkConfiguration"]
    for key in ("state.checkpoints.dir", "state.savepoints.dir", "high-availability.storageDir"):
        assert OBJECT_STORAGE.match(conf[key]), key
    assert conf["high-availability.type"] == "kubernetes"
    assert conf["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert spec["job"]["upgradeMode"] == "savepoint" and spec["job"]["state"] == "running"
    plugin = next(
        e
        for e in spec["podTemplate"]["spec"]["containers"][0]["env"]
        if e["name"] == "ENABLE_BUILT_IN_PLUGINS"
    )
    flink_version = re.search(r"^ARG FLINK_VERSION=(\S+)$", (FLINK / "Dockerfile").read_text(), re.MULTILINE)
    assert flink_version and plugin["value"] == f"flink-s3-fs-presto-{flink_version.group(1)}.jar"


def test_the_deployment_runs_what_the_image_recipe_installs(deployment) -> None:
    dockerfile = (FLINK / "Dockerfile").read_text(encoding="utf-8")
    flink_version = re.search(r"^ARG FLINK_VERSION=(\d+)\.(\d+)\.\d+$", dockerfile, re.MULTILINE)
    assert flink_version
    minor = f"{flink_version.group(1)}.{flink_version.group(2)}"
    assert deployment["spec"]["flinkVersion"] == f"v{minor.replace('.', '_')}"
    jar = deployment["spec"]["job"]["jarURI"].removeprefix("local://")
    assert f"COPY dist/beam-runners-flink-{minor}-job-server-*.jar {jar}" in dockerfile
    assert "FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}" in dockerfile  # ships boot


def test_the_entry_class_is_in_beams_flink_job_server(deployment) -> None:
    entry = deployment["spec"]["job"]["entryClass"]
    with zipfile.ZipFile(flink_job_server_jar()) as jar:
        assert f"{entry.replace('.', '/')}.class" in jar.namelist()


def test_the_pods_run_unprivileged_and_the_pieces_name_each_other(deployment) -> None:
    pod = deployment["spec"]["podTemplate"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"]["drop"] == ["ALL"]
    (account,) = of_kind("ServiceAccount")
    assert deployment["spec"]["serviceAccount"] == account["metadata"]["name"]
    (claim,) = of_kind("PersistentVolumeClaim")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [claim["metadata"]["name"]]
    assert {doc["metadata"].get("namespace", doc["metadata"]["name"]) for doc in documents()} == {"kubesigma"}
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = sorted(kustomization["resources"])
    assert listed == sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


def test_the_tail_path_reads_the_audit_log_read_only(deployment) -> None:
    task_pod = deployment["spec"]["taskManager"]["podTemplate"]["spec"]
    (mount,) = task_pod["containers"][0]["volumeMounts"]
    assert mount["readOnly"] is True
    tail = next(a for a in driver_command(deployment) if a.startswith("--tail="))
    assert tail == f"--tail={mount['mountPath']}"
    assert Path(mount["mountPath"]) == Path(task_pod["volumes"][0]["hostPath"]["path"])


def _flink_pods() -> Any:
    spec = importlib.util.spec_from_file_location("flink_pods", REPO / ".ci" / "deploy" / "flink_pods.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkov_sees_the_pods_the_operator_makes(deployment, tmp_path) -> None:
    """checkov has no schema for FlinkDeployment: `make deploy-check` renders its pods for it. They must be
    what the operator runs: the shared template merged with each role's, the image, the role's resources."""
    manager, worker = _flink_pods().pods(deployment)
    for pod in (manager, worker):
        spec = pod["spec"]
        assert spec["securityContext"] == deployment["spec"]["podTemplate"]["spec"]["securityContext"]
        (main,) = (c for c in spec["containers"] if c["name"] == "flink-main-container")
        assert main["image"] == deployment["spec"]["image"] and main["securityContext"]["capabilities"]
        assert {m["name"] for m in main["volumeMounts"]} >= {"beam-artifacts", "es-api-key"}
        assert pod["metadata"]["annotations"] == deployment["spec"]["podTemplate"]["metadata"]["annotations"]
    worker_mounts = {m["name"] for m in worker["spec"]["containers"][0]["volumeMounts"]}
    manager_mounts = {m["name"] for m in manager["spec"]["containers"][0]["volumeMounts"]}
    assert "audit-log" in worker_mounts and "audit-log" not in manager_mounts
    assert worker["spec"]["containers"][0]["resources"]["limits"]["memory"] == "4096m"
    # Every skip names its check and says why.
    for key, value in manager["metadata"]["annotations"].items():
        if key.startswith("checkov.io/skip"):
            check, _, reason = value.partition("=")
            assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason.split()) >= 5, value
    # The NetworkPolicy selects the pods by the labels Flink's native mode gives them.
    (policy,) = of_kind("NetworkPolicy")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= manager["metadata"]["labels"].items()
    assert selector.items() <= worker["metadata"]["labels"].items()
    assert _flink_pods().main(MANIFESTS, tmp_path) == 0
    assert sorted(p.name for p in tmp_path.glob("kubesigma-*.yaml")) == [
        "kubesigma-jobmanager.yaml",
        "kubesigma-taskmanager.yaml",
    ]
