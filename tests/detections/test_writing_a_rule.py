"""docs/detections.md "Writing a rule": every command it shows runs, in order, on the Falco traces, from a
folder laid out like the repository (the pack, docs/ and ../shared/datasets linked in place)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from kubesigma.pipeline.commands.rules_doc import GUIDE
from support.paths import DATASETS, REPO


def walkthrough_commands() -> list[str]:
    section = GUIDE.split("## Writing a rule", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.strip().startswith("kubesigma ")]


def test_the_walkthrough_shows_every_detection_engineering_command() -> None:
    actions = [shlex.split(c)[2] for c in walkthrough_commands()]
    assert actions == ["new", "check", "test", "lint", "explain", "backtest"]


def test_the_walkthrough_commands_work_on_the_falco_traces(tmp_path: Path) -> None:
    top = tmp_path / "repo"
    top.mkdir()
    for name in ("detections", "docs"):
        (top / name).symlink_to(REPO / name)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "datasets").symlink_to(DATASETS)
    outputs = {}
    for command in walkthrough_commands():
        argv = shlex.split(command)
        done = subprocess.run(
            [sys.executable, "-m", "kubesigma.pipeline.cli", *argv[1:]],
            cwd=top,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs[argv[2]] = done.stdout
    assert "verdict: MATCH" in outputs["explain"]
    assert "rules lint: 0 findings" in outputs["lint"]
    # What the page says the backtest prints.
    assert outputs["backtest"].startswith("24 alerts from 51 events")
    assert "against the baseline (23 alerts): 1 new, 0 lost, 0 level changes" in outputs["backtest"]
    assert (
        "ConfigMap Deleted By A Person  minikube-user → default/configmaps/my-config" in outputs["backtest"]
    )
    assert "1 new, 0 lost, 0 level changes" in GUIDE and "24 alerts against the baseline's 23" in GUIDE
    assert (top / "backtest.html").is_file()
