"""Inputs as people type them, through the real `kubesigma run` in a subprocess: a directory read
recursively (plain, gzip, rotated names), `-` for standard input, files that cannot be read as dead
letters naming path and reason, and every command-line error as one line naming the input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
import pytest

from support.audit_records import audit_event, routine_read
from support.cli_runs import CliRun, kubesigma, run_job
from support.correlation_pack import SECRET_ACCESS_RULE


def lines(first: int, count: int) -> bytes:
    return b"".join(orjson.dumps(routine_read(first + i)) + b"\n" for i in range(count))


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kube-apiserver audit directory as an operator finds it, with what cannot be read in it."""
    root = tmp_path_factory.mktemp("inputs") / "audit"
    (root / "archive" / "2026" / "11").mkdir(parents=True)
    (root / "audit.log").write_bytes(lines(0, 3))
    (root / "audit.log.1").write_bytes(lines(100, 4))
    (root / "audit-2026-11-28T10-00-00.000.log.gz").write_bytes(gzip.compress(lines(200, 5)))
    (root / "archive" / "2026" / "11" / "kube-apiserver-audit.log.gz").write_bytes(
        gzip.compress(lines(300, 6))
    )
    (root / "gone.log").symlink_to(root / "rotated-away.log")
    os.mkfifo(root / "audit.pipe")
    denied = root / "denied.log"
    denied.write_bytes(lines(400, 2))
    denied.chmod(0)
    return root


@pytest.fixture(scope="module")
def directory_run(audit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return run_job(tmp_path_factory.mktemp("out"), [str(audit_dir)])


def dead_letter_for(run: CliRun, path: Path) -> dict:
    (letter,) = [d for d in run.dead if d["source"]["uri"] == str(path)]
    return letter


def test_a_directory_reads_every_regular_file_below_it_plain_gzip_and_rotated(directory_run: CliRun) -> None:
    assert directory_run.code == 0, directory_run.stderr
    assert directory_run.metrics["normalized"] == 3 + 4 + 5 + 6


def test_counts_hold_with_unreadable_entries_in_the_directory(directory_run: CliRun) -> None:
    m = directory_run.metrics
    assert (m["read"], m["dead_lettered"]) == (18 + 3, 3)
    assert m["read"] == m["normalized"] + m["dead_lettered"] + m["skipped"]


def test_a_broken_symlink_is_a_dead_letter_naming_it_and_its_target(
    directory_run: CliRun, audit_dir: Path
) -> None:
    letter = dead_letter_for(directory_run, audit_dir / "gone.log")
    assert letter["stage"] == "read"
    assert "broken symbolic link" in letter["reason"]
    assert "rotated-away.log" in letter["reason"]


def test_a_fifo_is_a_dead_letter_not_a_hang(directory_run: CliRun, audit_dir: Path) -> None:
    letter = dead_letter_for(directory_run, audit_dir / "audit.pipe")
    assert "not a regular file (a FIFO)" in letter["reason"]


def test_a_file_without_read_permission_is_a_dead_letter(directory_run: CliRun, audit_dir: Path) -> None:
    letter = dead_letter_for(directory_run, audit_dir / "denied.log")
    assert "Permission denied" in letter["reason"]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_dash_reads_standard_input(tmp_path: Path, compress: bool) -> None:
    secret_read = audit_event(9)
    data = lines(0, 5) + orjson.dumps(secret_read) + b"\n" + b"not json\n"
    (tmp_path / "secret.yml").write_text(SECRET_ACCESS_RULE)
    rules = ["--rules", str(tmp_path / "secret.yml")]
    run = run_job(tmp_path / "out", ["-"], *rules, stdin=gzip.compress(data) if compress else data)
    assert run.code == 0, run.stderr
    assert (run.metrics["normalized"], run.metrics["dead_lettered"]) == (6, 1)
    (letter,) = run.dead
    assert letter["source"] == {"uri": "<stdin>", "line": 7, "offset": len(data) - len(b"not json\n")}
    (alert,) = run.alerts
    assert alert["kubernetes"]["audit"]["auditID"] == secret_read["auditID"]


def test_a_file_that_vanishes_after_it_was_listed_is_a_dead_letter(tmp_path: Path) -> None:
    """The race made deterministic: the listing the command does is wrapped so the file is deleted
    right after it, before the job reads it (as logrotate deleting an old file would)."""
    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "audit.log").write_bytes(lines(0, 3))
    (folder / "audit-2026-11-01T00-00-00.000.log").write_bytes(lines(10, 3))
    wrapper = (
        "import os, sys\n"
        "from kubesigma.pipeline import run, cli\n"
        "listed = run.expand_inputs\n"
        "def then_rotated(patterns):\n"
        "    files = listed(patterns)\n"
        "    os.remove(min(files))\n"
        "    return files\n"
        "run.expand_inputs = then_rotated\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    run = run_job(tmp_path / "out", [str(folder)], python=wrapper)
    assert run.code == 0, run.stderr
    assert run.metrics["normalized"] == 3
    (letter,) = run.dead
    assert letter["source"]["uri"] == str(folder / "audit-2026-11-01T00-00-00.000.log")
    assert "removed or renamed since it was listed" in letter["reason"]


def test_an_unlistable_directory_below_the_input_is_a_dead_letter(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    (folder / "locked").mkdir(parents=True)
    (folder / "audit.log").write_bytes(lines(0, 2))
    (folder / "locked" / "audit.log").write_bytes(lines(10, 2))
    (folder / "locked").chmod(0)
    try:
        run = run_job(tmp_path / "out", [str(folder)])
    finally:
        (folder / "locked").chmod(0o755)
    assert run.code == 0, run.stderr
    assert run.metrics["normalized"] == 2
    (letter,) = run.dead
    assert letter["source"]["uri"] == str(folder / "locked")
    assert "Permission denied" in letter["reason"]


# -- errors: one line naming the input, never a traceback -------------------------------------------


def error_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty").mkdir()
    (tmp / "locked").mkdir()
    (tmp / "locked").chmod(0)
    (tmp / "audit.log").write_bytes(lines(0, 1))
    log = str(tmp / "audit.log")
    out = ["--alerts-out", str(tmp / "a.jsonl"), "--dead-letter", str(tmp / "d.jsonl")]
    return {
        "missing file": (
            ["--input", str(tmp / "nope.log"), *out],
            f"--input '{tmp / 'nope.log'}': no such file",
        ),
        "glob matching nothing": (["--input", str(tmp / "*.gz"), *out], "matches no file"),
        "empty directory": (["--input", str(tmp / "empty"), *out], "holds no file"),
        "unlistable directory": (["--input", str(tmp / "locked"), *out], "cannot list the directory"),
        "stdin twice": (["--input", "-", "--input", "-", *out], "standard input can be read once"),
        "stdin on a remote runner": (
            ["--input", "-", "--runner", "FlinkRunner", *out],
            "standard input is read where the job runs",
        ),
        "alerts into a missing folder": (
            [
                "--input",
                log,
                "--alerts-out",
                str(tmp / "no" / "a.jsonl"),
                "--dead-letter",
                str(tmp / "d.jsonl"),
            ],
            "--alerts-out",
        ),
        "dead letters into a directory": (
            ["--input", log, "--alerts-out", str(tmp / "a.jsonl"), "--dead-letter", str(tmp / "empty")],
            "is a directory",
        ),
        "bad size": (["--input", log, *out, "--max-record-bytes", "lots"], "--max-record-bytes"),
        "unknown option": (["--input", log, *out, "--inptu", log], "unknown option(s): --inptu"),
        "missing rules": (["--input", log, *out, "--rules", str(tmp / "rules")], "--rules: no such file"),
        "no input": ([*out], "--input is required"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "glob matching nothing",
        "empty directory",
        "unlistable directory",
        "stdin twice",
        "stdin on a remote runner",
        "alerts into a missing folder",
        "dead letters into a directory",
        "bad size",
        "unknown option",
        "missing rules",
        "no input",
    ],
)
def test_a_command_line_error_is_one_line_naming_the_input(tmp_path: Path, case: str) -> None:
    args, says = error_cases(tmp_path)[case]
    try:
        done = kubesigma("run", *args, timeout=120)
    finally:
        (tmp_path / "locked").chmod(0o755)
    stderr = done.stderr.decode()
    assert done.returncode == 2
    assert "Traceback" not in stderr
    (line,) = stderr.splitlines()
    assert line.startswith("kubesigma: ")
    assert says in line
