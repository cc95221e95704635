"""Streaming source options fail fast with a message that names the input, before any runner starts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import StandardOptions

from kubesigma.pipeline.options import OptionError
from kubesigma.pipeline.run import pipeline_options, run


def outputs(tmp_path: Path) -> list[str]:
    return ["--alerts-out", str(tmp_path / "alerts"), "--dead-letter", str(tmp_path / "dead")]


def test_tail_runs_on_prism_unless_a_runner_is_named(tmp_path: Path) -> None:
    options = pipeline_options(["--streaming", "--tail", str(tmp_path)])
    assert options.view_as(StandardOptions).runner == "PrismRunner"


def test_tail_on_the_direct_runner_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="splittable DoFn in streaming mode"):
        pipeline_options(["--streaming", "--tail", str(tmp_path), "--runner=BundleBasedDirectRunner"])


def test_a_missing_tail_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-audit-dir"
    with pytest.raises(OptionError, match="no-such-audit-dir"):
        run(["--streaming", "--tail", str(missing), *outputs(tmp_path)], io.StringIO())


def test_a_subscription_beam_cannot_read_is_refused_by_name(tmp_path: Path) -> None:
    bad = "projects/p/subscriptions/audit"  # project ids have at least 6 characters
    with pytest.raises(OptionError, match="projects/p/subscriptions/audit"):
        run(["--streaming", "--pubsub-subscription", bad, *outputs(tmp_path)], io.StringIO())


def test_a_bad_max_idle_is_refused(tmp_path: Path) -> None:
    argv = ["--streaming", "--tail", str(tmp_path), "--tail-max-idle", "soon", *outputs(tmp_path)]
    with pytest.raises(OptionError, match="--tail-max-idle 'soon'"):
        run(argv, io.StringIO())


def test_pubsub_on_prism_is_refused_with_the_reason() -> None:
    argv = [
        "--streaming",
        "--pubsub-subscription",
        "projects/kubesigma-test/subscriptions/a",
        "--runner=PrismRunner",
    ]
    with pytest.raises(OptionError, match="pubsub_read"):
        pipeline_options(argv)


def test_kinesis_streaming_runs_on_prism_unless_a_runner_is_named() -> None:
    options = pipeline_options(["--streaming", "--kinesis-stream", "eks-audit"])
    assert options.view_as(StandardOptions).runner == "PrismRunner"


def test_kinesis_on_the_direct_runner_is_refused_with_the_reason() -> None:
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--runner=BundleBasedDirectRunner"]
    with pytest.raises(OptionError, match="--kinesis-stream does not run on BundleBasedDirectRunner"):
        pipeline_options(argv)


def test_kinesis_with_another_source_is_refused(tmp_path: Path) -> None:
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--tail", str(tmp_path), *outputs(tmp_path)]
    with pytest.raises(OptionError, match="--kinesis-stream reads alone"):
        run(argv, io.StringIO())


def test_a_kinesis_checkpoint_outside_streaming_is_refused(tmp_path: Path) -> None:
    argv = [
        "--kinesis-stream",
        "eks-audit",
        "--kinesis-checkpoint",
        str(tmp_path / "k.json"),
        *outputs(tmp_path),
    ]
    with pytest.raises(OptionError, match="need --streaming"):
        run(argv, io.StringIO())


def test_an_unreadable_kinesis_checkpoint_is_named(tmp_path: Path) -> None:
    checkpoint = tmp_path / "kinesis-checkpoint.json"
    checkpoint.write_text("{not json")
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--kinesis-checkpoint", str(checkpoint)]
    with pytest.raises(OptionError, match=r"kinesis-checkpoint\.json is unreadable"):
        run([*argv, *outputs(tmp_path)], io.StringIO())


def test_a_bad_kinesis_max_idle_is_refused(tmp_path: Path) -> None:
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--kinesis-max-idle", "soon", *outputs(tmp_path)]
    with pytest.raises(OptionError, match="--kinesis-max-idle 'soon'"):
        run(argv, io.StringIO())
