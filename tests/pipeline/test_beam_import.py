"""`kubesigma run` imports Beam without its cloud I/O for a local batch job, and with it otherwise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubesigma.pipeline.beam_import import CLOUD_IO, local_job

LOCAL = ["--input", "audit.log", "--alerts-out", "alerts.jsonl", "--dead-letter", "dead.jsonl"]


def test_a_batch_run_over_local_files_is_local() -> None:
    assert local_job(LOCAL)
    assert local_job([*LOCAL, "--runner", "FnApiRunner"])
    assert local_job([*LOCAL, "--runner=apache_beam.runners.direct.direct_runner.BundleBasedDirectRunner"])


@pytest.mark.parametrize(
    "extra",
    [
        ["--input", "gs://bucket/audit/*.log"],
        ["--input=s3://bucket/audit.log"],
        ["--metrics-out", "azfs://account/container/metrics.json"],
        ["--runner", "DataflowRunner"],
        ["--runner=FlinkRunner"],
        ["--streaming"],
        ["--pubsub-subscription", "projects/p/subscriptions/s"],
    ],
)
def test_a_cloud_path_a_remote_runner_or_a_stream_is_not_local(extra: list[str]) -> None:
    assert not local_job([*LOCAL, *extra])


def _in_fresh_interpreter(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout + done.stderr


def test_beam_loads_without_cloud_io_quietly_and_loads_it_later_when_asked() -> None:
    out = _in_fresh_interpreter(
        "import sys\n"
        "from kubesigma.pipeline.beam_import import CLOUD_IO, import_beam_without_cloud_io\n"
        "import_beam_without_cloud_io()\n"
        "import apache_beam\n"
        "print('loaded', sorted(m for m in CLOUD_IO if m in sys.modules))\n"
        "from apache_beam.io.filesystems import FileSystems\n"
        "import apache_beam.io.gcp.gcsfilesystem\n"
        "print('gs', type(FileSystems.get_filesystem('gs://bucket/audit.log')).__name__)\n"
    )
    assert "loaded []" in out
    assert "gs GCSFileSystem" in out
    assert "Failed to import" not in out  # Beam skipped them without a warning


def test_an_ordinary_import_of_beam_loads_cloud_io() -> None:
    out = _in_fresh_interpreter("import sys, apache_beam\nprint(sorted(m for m in sys.modules))")
    assert all(name in out for name in CLOUD_IO)
