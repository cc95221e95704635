"""The real `kubesigma` command in a subprocess, as a user runs it, with what it wrote.

As root, the command runs without the capabilities that bypass file permissions (`setpriv`), so a
file its owner cannot read is refused as it is for any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# Without these, root reads any file whatever its mode: the permission tests would prove nothing.
_AS_A_USER = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def as_a_user() -> list[str]:
    """The command prefix that makes file permissions apply (none needed for an ordinary user)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        raise RuntimeError("running as root needs util-linux's setpriv to drop CAP_DAC_OVERRIDE")
    return list(_AS_A_USER)


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    out: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)


def kubesigma(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 300, python: str = ""
) -> subprocess.CompletedProcess[bytes]:
    """`kubesigma ARGS` (or `python -c CODE ARGS` when `python` is given), returning what it printed."""
    command = (
        [sys.executable, "-c", python, *args]
        if python
        else [sys.executable, "-m", "kubesigma.pipeline.cli", *args]
    )
    return subprocess.run(
        [*as_a_user(), *command],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_argv(out: Path, inputs: list[str], *extra: str) -> list[str]:
    """`run --input ... --alerts-out/--dead-letter/--metrics-out` into `out`, then `extra`."""
    argv = ["run"]
    for name in inputs:
        argv += ["--input", name]
    return [
        *argv,
        "--alerts-out", str(out / "alerts.jsonl"),
        "--dead-letter", str(out / "dead.jsonl"),
        "--metrics-out", str(out / "metrics.json"),
        *extra,
    ]  # fmt: skip


def run_job(
    out: Path, inputs: list[str], *extra: str, stdin: bytes | None = None, python: str = ""
) -> CliRun:
    """`kubesigma run` over `inputs` with its outputs in `out`, read back."""
    out.mkdir(parents=True, exist_ok=True)
    done = kubesigma(*run_argv(out, inputs, *extra), stdin=stdin, python=python)
    run = CliRun(done.returncode, done.stdout.decode(), done.stderr.decode(), out)
    if (out / "metrics.json").exists():
        run.metrics = orjson.loads((out / "metrics.json").read_bytes())
    for name, attr in (("alerts.jsonl", "alerts"), ("dead.jsonl", "dead")):
        path = out / name
        if path.exists():
            setattr(run, attr, [orjson.loads(line) for line in path.read_bytes().splitlines() if line])
    return run
