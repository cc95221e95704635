"""`kubesigma rules backtest`: `kubesigma run`'s batch job over an archive, summarized per rule, a rule
change's diff, the same on GKE and EKS archives, and the HTML report opened in a real headless browser
(Debian's chromium)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from kubesigma.connectors.delivery import as_gke_logentry, write_cloudwatch_gzip
from kubesigma.connectors.simulated_cluster import generate
from kubesigma.pipeline.commands.rules_backtest import run_backtest
from kubesigma.pipeline.run import run
from support.paths import REPO, SHIPPED_CORRELATIONS, SHIPPED_RULES

DAYS = (26, 27, 28)  # three days of November 2026, one file each, as an archive keeps them
EVENTS_PER_DAY = 1500
SECRETS_UA = "c59083be-7358-4446-8698-e4ddce3e98a7"  # secrets read with a scripting user agent
DAEMONSET = "867f5d5c-8fda-4892-be1e-fb9ad278130b"


def _day_events(day: int) -> list[dict[str, Any]]:
    start = datetime(2026, 11, day, 8, 0, tzinfo=UTC)
    return list(generate(day, EVENTS_PER_DAY, start=start, cluster="demo"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("archive")
    for day in DAYS:
        with (folder / f"audit-2026-11-{day}.jsonl").open("wb") as out:
            for event in _day_events(day):
                out.write(orjson.dumps(event) + b"\n")
    return folder


def _backtest(*inputs: str, **kwargs: Any) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    assert run_backtest(list(inputs), as_json=True, out=out, err=err, **kwargs) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def report(archive: Path) -> dict[str, Any]:
    return _backtest(str(archive / "*.jsonl"))


def _rule_counts(document: dict[str, Any]) -> dict[str, int]:
    return {r["id"]: r["alerts"] for r in document["rules"]}


@pytest.mark.parametrize("suppress_window", [None, "10m"])
def test_backtest_totals_equal_kubesigma_runs_alerts_on_the_same_input(
    archive: Path, report: dict[str, Any], tmp_path: Path, suppress_window: str | None
) -> None:
    argv = [f"--input={archive / '*.jsonl'}", f"--alerts-out={tmp_path / 'a.jsonl'}"]
    argv += [f"--dead-letter={tmp_path / 'd.jsonl'}"]
    document = report
    if suppress_window:
        argv.append(f"--suppress-window={suppress_window}")
        document = _backtest(str(archive / "*.jsonl"), suppress_window=suppress_window)
    run(argv, io.StringIO())
    alerts = [orjson.loads(line) for line in (tmp_path / "a.jsonl").read_bytes().splitlines()]
    assert alerts and document["alerts"] == len(alerts)
    assert _rule_counts(document) == dict(Counter(a["rule"]["id"] for a in alerts))
    assert document["events"] == len(DAYS) * EVENTS_PER_DAY


def test_per_rule_stats_count_days_identities_sources_namespaces_and_groups(report: dict[str, Any]) -> None:
    assert report["days"] == [f"2026-11-{d}" for d in DAYS]
    for rule in report["rules"]:
        assert sum(rule["days"].values()) == rule["alerts"]
        assert set(rule["days"]) <= set(report["days"])
        assert rule["alerts_per_day"] == round(rule["alerts"] / len(DAYS), 2)
        assert 1 <= rule["identities"] <= rule["alerts"] and rule["sources"] <= rule["alerts"]
        assert sum(g["alerts"] for g in rule["top_groups"]) <= rule["alerts"]
    (secrets,) = [r for r in report["rules"] if r["id"] == SECRETS_UA]
    # Each day's story has the same scripted secret reads.
    assert len(secrets["days"]) == len(DAYS) and secrets["identities"] >= 2


def _changed_pack(folder: Path) -> tuple[Path, str]:
    """The shipped pack with one rule narrowed and re-levelled and one new rule."""
    rules = folder / "rules"
    shutil.copytree(SHIPPED_RULES, rules)
    path = rules / "kubernetes" / "audit" / "secrets_accessed_with_unusual_user_agent.yml"
    rule = yaml.safe_load(path.read_text())
    rule["detection"]["filter_anonymous"] = {"user.username": "system:anonymous"}
    rule["detection"]["condition"] = "selection and not filter_anonymous"
    rule["level"] = "medium"
    path.write_text(yaml.safe_dump(rule, sort_keys=False))
    daemonset = next(p for p in rules.rglob("*.yml") if f"id: {DAEMONSET}" in p.read_text())
    new_id = "0f5b1f0e-3c55-4f6e-9a7b-5d5e2f9b1a01"
    added = yaml.safe_load(daemonset.read_text())
    added.update(id=new_id, name="k8s_daemonset_created_copy", title="DaemonSet Created (copy)")
    (daemonset.parent / "daemonset_created_copy.yml").write_text(yaml.safe_dump(added, sort_keys=False))
    return rules, new_id


def test_a_rule_changes_diff_on_the_demo_traffic(
    archive: Path, report: dict[str, Any], tmp_path: Path
) -> None:
    rules, new_id = _changed_pack(tmp_path)
    shipped = [str(SHIPPED_RULES), str(SHIPPED_CORRELATIONS)]
    document = _backtest(
        str(archive / "*.jsonl"), rules=[str(rules), str(SHIPPED_CORRELATIONS)], baseline=shipped
    )
    baseline = report  # the shipped pack over the same archive
    # Lost: exactly the anonymous scripted secret reads the baseline alerted on.
    anonymous = [
        g
        for r in baseline["rules"]
        if r["id"] == SECRETS_UA
        for g in r["top_groups"]
        if "system:anonymous" in g["group"]
    ]
    lost = document["lost"]
    assert lost and {a["rule"]["id"] for a in lost} == {SECRETS_UA}
    assert all(a["group"].startswith("system:anonymous → ") for a in lost)
    assert len(lost) >= sum(g["alerts"] for g in anonymous)
    counts = _rule_counts(document)
    assert counts[SECRETS_UA] == _rule_counts(baseline)[SECRETS_UA] - len(lost)
    # New: exactly the copied rule's alerts, one per DaemonSet the original alerts on.
    assert {a["rule"]["id"] for a in document["new"]} == {new_id}
    assert len(document["new"]) == counts[new_id] == _rule_counts(baseline)[DAEMONSET]
    assert document["level_changes"] == [
        {
            "id": SECRETS_UA,
            "title": "Secrets Accessed With A Scripting Or Attack Tool User Agent",
            "from": "high",
            "to": "medium",
        }
    ]
    assert document["alerts"] == baseline["alerts"] - len(lost) + len(document["new"])


def test_gke_and_eks_archives_give_the_same_alerts(
    archive: Path, report: dict[str, Any], tmp_path: Path
) -> None:
    events = [
        orjson.loads(line) for p in sorted(archive.glob("*.jsonl")) for line in p.read_bytes().splitlines()
    ]
    gke = tmp_path / "gke.jsonl"
    # As GKE writes each stage (the exec command as a label): the one-entry form drops the command.
    gke.write_bytes(
        b"".join(orjson.dumps(as_gke_logentry(e, cluster="demo", as_written=True)) + b"\n" for e in events)
    )
    eks = write_cloudwatch_gzip(tmp_path / "eks.json.gz", events, per_envelope=50, cluster="demo")
    for archived in (gke, eks):
        document = _backtest(str(archived))
        assert document["events"] >= len(events)
        assert _rule_counts(document) == _rule_counts(report), archived.name


def test_since_and_until_keep_one_day_and_json_goes_alone_to_stdout(archive: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubesigma.pipeline.cli",
            "rules",
            "backtest",
            "--input",
            str(archive / "*.jsonl"),
            "--since",
            "2026-11-27T00:00:00Z",
            "--until",
            "2026-11-28T00:00:00Z",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["days"] == ["2026-11-27"]
    assert document["events"] == EVENTS_PER_DAY
    one_day = _backtest(str(archive / "audit-2026-11-27.jsonl"))
    assert _rule_counts(document) == _rule_counts(one_day)
    assert (
        "backtest: rules: read " in done.stderr
        and f"outside the time range {2 * EVENTS_PER_DAY}" in done.stderr
    )


def test_bad_times_and_empty_globs_fail_in_one_line(archive: Path) -> None:
    for args in (
        ["--input", str(archive / "*.jsonl"), "--since", "yesterday"],
        ["--input", str(archive / "*.jsonl"), "--since", "2026-11-28", "--until", "2026-11-27"],
        ["--input", str(archive / "nothing-*.jsonl")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "kubesigma.pipeline.cli", "rules", "backtest", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and done.stderr.startswith("kubesigma: ")
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs it from Debian (apt-get install chromium)")
        pytest.skip("no chromium here (apt-get install chromium)")
    return found


def _browser(chromium: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", *args],
        capture_output=True,
        timeout=120,
    )


def test_the_html_report_renders_one_daily_histogram_per_rule_in_a_real_browser(
    archive: Path, report: dict[str, Any], tmp_path: Path
) -> None:
    from PIL import Image

    chromium = _chromium()
    page = tmp_path / "report.html"
    out, err = io.StringIO(), io.StringIO()
    run_backtest([str(archive / "*.jsonl")], html_out=str(page), out=out, err=err)
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text and "<link" not in text and "<img" not in text
    # The DOM as the browser parsed it: a section per rule, a bar per day with alerts.
    dom = _browser(chromium, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-500:]
    from html.parser import HTMLParser

    class Bars(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.section: str | None = None
            self.bars: dict[str, dict[str, int]] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "section" and (a.get("id") or "").startswith("rule-"):
                self.section = (a["id"] or "")[5:]
                self.bars[self.section] = {}
            elif tag == "rect" and a.get("class") == "bar" and self.section:
                self.bars[self.section][a["data-day"] or ""] = int(a["data-alerts"] or 0)

    parsed = Bars()
    parsed.feed(dom.stdout.decode())
    assert parsed.bars == {r["id"]: r["days"] for r in report["rules"]}
    # The picture: the critical rule's bars are painted in its colour.
    shot = tmp_path / "shot.png"
    done = _browser(chromium, f"--screenshot={shot}", "--window-size=900,4000", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-500:]
    pixels = Counter(Image.open(shot).convert("RGB").getdata())
    assert pixels[(0x8E, 0x1B, 0x1B)] > 50  # critical bars and badge
    assert pixels[(0xC0, 0x39, 0x2B)] > 50  # high


def test_the_progress_line_counts_records_read_on_standard_error(capsys: pytest.CaptureFixture[str]) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from kubesigma.pipeline.metrics import ShowProgress

    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        pipeline | beam.Create([["a", "b"], ["c"], ["d", "e", "f"]]) | ShowProgress("backtest: x", every=0)
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if line.startswith("backtest: x: ")][-1].startswith(
        "backtest: x: 6 records read, "
    )
