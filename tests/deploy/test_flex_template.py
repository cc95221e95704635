"""The Dataflow Flex Template declares every streaming option `kubesigma run --help` lists, as typed
parameters Dataflow's own schema accepts, and its launcher's arguments come back as those options.

Dataflow itself (the launcher, the service) cannot run here: the template's metadata is parsed with
Google's Dataflow client types, and the image's install step runs in a fresh virtualenv (no Docker).
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
import subprocess
import sys
import tomllib
import venv
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from google.cloud.dataflow_v1beta3.types import templates
from google.protobuf import json_format

from kubesigma.pipeline import options as job_options
from kubesigma.pipeline.cli import main
from kubesigma.pipeline.commands import flex_template
from kubesigma.pipeline.options import OptionError, validate_args
from kubesigma.pipeline.run import submitted_only
from support.paths import REPO

DATAFLOW = REPO / "terraform" / "dataflow"
FLAG = re.compile(r"^  (--[a-z][a-z0-9_-]*)", re.MULTILINE)


def help_flags() -> list[str]:
    """The options `kubesigma run --help` prints, in its order."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["run", "--help"]) == 0
    return [flag for flag in FLAG.findall(out.getvalue()) if flag != "--help"]


def declared() -> dict:
    return json.loads((DATAFLOW / "metadata.json").read_text(encoding="utf-8"))


def test_metadata_json_is_generated_from_the_current_options() -> None:
    assert flex_template.main(["--check"]) == 0
    assert (DATAFLOW / "metadata.json").read_text(encoding="utf-8") == flex_template.render()


def test_a_stale_metadata_json_fails_the_check_saying_what_to_regenerate(tmp_path, capsys) -> None:
    # What the check prints once an option is added to `kubesigma run` (here: one the file lacks).
    stale = declared()
    dropped = stale["parameters"].pop()["name"]
    out = tmp_path / "metadata.json"
    out.write_text(json.dumps(stale), encoding="utf-8")
    assert flex_template.main(["--check", f"--out={out}"]) == 1
    message = capsys.readouterr().err.splitlines()
    assert f"new options: {dropped}" in message[0]
    assert (
        message[1]
        == f"regenerate it: .venv/bin/python -m kubesigma.pipeline.commands.flex_template --out {out}"
    )
    assert flex_template.main([f"--out={out}"]) == 0
    assert flex_template.main(["--check", f"--out={out}"]) == 0


def test_every_option_run_help_lists_is_a_parameter_but_the_batch_and_tail_inputs() -> None:
    flags = help_flags()
    params = {p.flag: p.name for p in flex_template.template_parameters()}
    left_out = {flag for flag in flags if flag not in params}
    assert {"--pubsub-subscription", "--kafka-bootstrap", "--alerts-out", "--es-api-key-secret"} <= set(
        params
    )
    flink_only = {"--" + dest for dest in flex_template.FLINK_ONLY}  # Beam spells these with underscores
    batch_and_tail = {"--input", "--since", "--until", "--workers", "--metrics-out", "--tail"}
    assert left_out == batch_and_tail | {f for f in flags if f.startswith("--tail-")} | (
        flink_only & set(flags)
    )
    assert [p["name"] for p in declared()["parameters"]] == [params[f] for f in flags if f in params]


def test_metadata_is_a_template_metadata_to_dataflow() -> None:
    """Parsed strictly (an unknown field or enum value fails) into Dataflow's own TemplateMetadata."""
    message = templates.TemplateMetadata.pb()()
    json_format.Parse((DATAFLOW / "metadata.json").read_text(encoding="utf-8"), message)
    assert message.streaming and message.supports_exactly_once
    kinds = {p.name: templates.ParameterType(p.param_type).name for p in message.parameters}
    assert kinds["pubsub_subscription"] == "PUBSUB_SUBSCRIPTION"
    assert kinds["alerts_out"] == kinds["dead_letter"] == "GCS_WRITE_FOLDER"
    assert kinds["es_index_events"] == "BOOLEAN"
    assert kinds["es_retention_days"] == "NUMBER"
    required = sorted(p.name for p in message.parameters if not p.is_optional)
    # The source is Pub/Sub, Kafka or Kinesis: `kubesigma run` refuses a launch with none or several.
    assert required == ["alerts_out", "dead_letter"]
    assert kinds["kafka_bootstrap"] == "TEXT"


def test_defaults_satisfy_their_own_patterns_and_kubesigma_reads_them() -> None:
    for param in declared()["parameters"]:
        for pattern in param.get("regexes", []):
            if "defaultValue" in param:
                assert re.fullmatch(pattern, param["defaultValue"]), param["name"]
    assert job_options._duration("2m") == 120 and re.fullmatch(flex_template.DURATION, "2m")
    assert job_options._size("16MiB") == 16 * 1024 * 1024 and re.fullmatch(flex_template.SIZE, "16MiB")
    assert not re.fullmatch(flex_template.DURATION, "two minutes")


def test_launcher_arguments_become_the_options_they_stand_for() -> None:
    argv = [
        "--pubsub_subscription=projects/acme/subscriptions/gke-audit",
        "--alerts_out=gs://acme-kubesigma/alerts",
        "--dead_letter=gs://acme-kubesigma/dead-letter",
        "--rules=/rules/site,/rules/extra",
        "--es_index_events=true",
        "--es_retention_days=14",
        "--project=acme",
        "--template_location=gs://dataflow-staging/template_launches/1/job_object",
    ]
    args = flex_template.launcher_argv(argv)
    assert args == [
        "--pubsub-subscription=projects/acme/subscriptions/gke-audit",
        "--alerts-out=gs://acme-kubesigma/alerts",
        "--dead-letter=gs://acme-kubesigma/dead-letter",
        "--rules=/rules/site",
        "--rules=/rules/extra",
        "--es-index-events",
        "--es-retention-days=14",
        "--project=acme",
        "--template_location=gs://dataflow-staging/template_launches/1/job_object",
    ]
    validate_args(args)
    assert flex_template.launcher_argv(["--es_index_events=false"]) == []
    with pytest.raises(OptionError, match="neither true nor false"):
        flex_template.launcher_argv(["--es_index_events=yes"])


def test_launch_runs_one_streaming_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` is replaced to capture the job's command line; what it does is tested elsewhere."""
    seen: list[list[str]] = []
    monkeypatch.setattr("kubesigma.pipeline.cli.main", lambda argv: seen.append(list(argv)) or 0)
    assert flex_template.launch(["--streaming=true", "--alerts_out=gs://b/a"]) == 0
    assert seen == [["run", "--streaming", "--alerts-out=gs://b/a"]]


def test_a_template_launch_is_handed_over_not_waited_for() -> None:
    """The launcher passes --template_location: Beam writes the job description and returns no job, so
    `run` must neither wait nor query counters (Dataflow's client raises without a job id)."""
    launch = PipelineOptions(["--template_location=gs://staging/template_launches/1/job_object"])
    assert submitted_only(launch)
    assert submitted_only(PipelineOptions(["--no_wait_until_finish"]))
    assert not submitted_only(PipelineOptions(["--runner=DataflowRunner"]))


def _pin(text: str, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", text, re.MULTILINE)
    assert match, name
    return match.group(1)


def test_images_pin_the_beam_and_python_that_kubesigma_is_built_for() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    beam = next(d for d in project["dependencies"] if d.startswith("apache-beam"))
    for dockerfile in (DATAFLOW / "Dockerfile", REPO / "terraform" / "flink" / "Dockerfile"):
        text = dockerfile.read_text(encoding="utf-8")
        assert beam.endswith(f"=={_pin(text, 'BEAM_VERSION')}"), dockerfile
        minor = int(_pin(text, "PYTHON_VERSION").split(".")[1])
        assert project["requires-python"] == ">=3.11,<3.13" and 11 <= minor < 13
    dataflow = (DATAFLOW / "Dockerfile").read_text(encoding="utf-8")
    assert "ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main.py" in dataflow
    assert "terraform/dataflow/main.py /template/" in dataflow
    assert "python311-template-launcher-base" in dataflow and _pin(dataflow, "PYTHON_VERSION") == "3.11"


def _let_in(ignore: Path, path: str) -> bool:
    """Docker's rule: the last pattern of the .dockerignore that matches a path decides."""
    verdict = True
    for line in ignore.read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if pattern and not pattern.startswith("#"):
            keep = pattern.startswith("!")
            if fnmatch.fnmatchcase(path, pattern.removeprefix("!")):
                verdict = keep
    return verdict


@pytest.mark.parametrize("image", ["dataflow", "flink"])
def test_each_image_gets_what_it_copies_and_nothing_else_of_the_checkout(image: str) -> None:
    """BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile (the build context is the repo root)."""
    dockerfile = REPO / "terraform" / image / "Dockerfile"
    ignore = dockerfile.with_name("Dockerfile.dockerignore")
    copied = [
        source
        for line in dockerfile.read_text(encoding="utf-8").splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert "terraform/install-kubesigma.sh" in copied
    for source in copied:
        assert _let_in(ignore, source.replace("*", "0.1.0")), source
    for unwanted in (
        ".venv/bin/python",
        "tests/deploy/test_terraform.py",
        ".git/config",
        "dist/other.tar.gz",
    ):
        assert not _let_in(ignore, unwanted), unwanted


@pytest.mark.slow
def test_the_images_install_step_works_from_the_wheel_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """What `RUN install-kubesigma.sh` does in both Dockerfiles, on a fresh virtualenv instead of an image:
    the built wheel installs, loads its shipped rules, and the template's entry point answers with the
    options metadata.json declares."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("kubesigma-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    install = subprocess.run(
        ["bash", str(REPO / "terraform" / "install-kubesigma.sh"), str(wheel)],
        env={"PYTHON": str(python), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    assert f"kubesigma 0.1.0 installed for {python}" in install.stdout
    entry = subprocess.run(
        [str(python), str(DATAFLOW / "main.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert entry.returncode == 0, entry.stderr[-2000:]
    flags = {p.flag for p in flex_template.template_parameters()}
    assert flags <= set(FLAG.findall(entry.stdout))
