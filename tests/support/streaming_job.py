"""A streaming `kubesigma run` in its own process group, for end-to-end tests: wait for a line of its log,
wait for it to end (a hung job fails the test instead of using up CI's time), kill it whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

RUN_LIMIT_S = 240


@dataclass
class Job:
    proc: subprocess.Popen[bytes]
    log: Path

    def wait_for(self, text: str, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                pytest.fail(f"kubesigma run exited ({self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"no {text!r} from kubesigma run within {limit} s:\n{self.tail()}")

    def wait(self, limit: float = RUN_LIMIT_S) -> int:
        try:
            return self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"kubesigma run did not finish in {limit} s:\n{self.tail()}")

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGKILL to the whole process group (the job server and SDK workers included)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start_job(argv: Sequence[str], log: Path) -> Job:
    """`kubesigma --verbose run ARGV` in its own process group (a hung job is stopped whole)."""
    cmd = [sys.executable, "-m", "kubesigma.pipeline.cli", "--verbose", "run", *argv]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Job(proc, log)
