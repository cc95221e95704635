"""`kubesigma rules backtest`: `kubesigma run`'s batch job (correlation and suppression as configured)
over archived audit logs, summarized per rule; with a baseline rule set, what a rule change adds, loses
and re-levels. Reports as a terminal table, one JSON document, or a self-contained HTML page."""

from __future__ import annotations

import html
import io
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson

from kubesigma.connectors.model import RuleInfo
from kubesigma.detections.engine import EngineConfig, RuleSet
from kubesigma.pipeline.options import DEFAULT_CORRELATION_RULES, DEFAULT_RULES, OptionError, time_range
from kubesigma.pipeline.run import RunReport, expand_inputs, run

TOP_GROUPS = 5


@dataclass
class RuleStats:
    """One rule's alerts in the backtest."""

    info: RuleInfo
    alerts: int = 0
    days: Counter[str] = field(default_factory=Counter)
    identities: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    groups: Counter[str] = field(default_factory=Counter)

    def add(self, alert: dict[str, Any]) -> None:
        self.alerts += 1
        self.days[alert["@timestamp"][:10]] += 1
        if name := alert.get("user", {}).get("name"):
            self.identities.add(name)
        if ip := alert.get("source", {}).get("ip"):
            self.sources.add(ip)
        if namespace := alert.get("orchestrator", {}).get("namespace"):
            self.namespaces.add(namespace)
        self.groups[group_of(alert)] += 1

    def as_dict(self, span_days: int) -> dict[str, Any]:
        return {
            "id": self.info.id,
            "title": self.info.title,
            "level": self.info.level,
            "kind": self.info.kind,
            "alerts": self.alerts,
            "alerts_per_day": round(self.alerts / span_days, 2),
            "days": dict(sorted(self.days.items())),
            "identities": len(self.identities),
            "sources": len(self.sources),
            "namespaces": len(self.namespaces),
            "top_groups": [{"group": g, "alerts": n} for g, n in self.groups.most_common(TOP_GROUPS)],
        }


@dataclass
class Backtest:
    """One rule set's run over the input: the run's counters, its rules and its alerts."""

    report: RunReport
    rules: dict[str, RuleInfo]
    alerts: list[dict[str, Any]]


def group_of(alert: dict[str, Any]) -> str:
    """What an alert is about, as the suppression stage groups it: the correlation's group-by values,
    or who acted on which object."""
    correlation = alert.get("kubesigma", {}).get("correlation") or {}
    if correlation.get("group"):
        return ", ".join(f"{k}={v}" for k, v in sorted(correlation["group"].items()))
    orchestrator = alert.get("orchestrator", {})
    resource = orchestrator.get("resource", {})
    target = "/".join(
        p for p in (orchestrator.get("namespace"), resource.get("type"), resource.get("name")) if p
    )
    return f"{alert.get('user', {}).get('name') or '-'} → {target or '-'}"


def alert_summary(alert: dict[str, Any]) -> dict[str, Any]:
    """The few fields of an alert a reviewer needs in a diff, and where its event was read."""
    return {
        "alert_id": alert["kubesigma"]["alert_id"],
        "@timestamp": alert["@timestamp"],
        "rule": {k: alert["rule"][k] for k in ("id", "name", "level")},
        "group": group_of(alert),
        "source": alert["kubesigma"].get("source", {}),
    }


def run_rules(
    inputs: Sequence[str],
    rule_paths: Sequence[str],
    options: Sequence[str],
    label: str,
    err: TextIO,
    engine_config: str | None = None,
) -> Backtest:
    """`kubesigma run` itself over the inputs with these rules; alerts read back from its output."""
    config = EngineConfig.from_file(Path(engine_config)) if engine_config else None
    ruleset = RuleSet.load(list(rule_paths), config=config)
    infos = {r.id: r for r in (*ruleset.rules, *ruleset.correlation_infos)}
    started = time.monotonic()
    err.write(f"backtest: {label}: {len(infos)} rules over {len(expand_inputs(inputs))} files\n")
    with tempfile.TemporaryDirectory(prefix="kubesigma-backtest-") as tmp:
        alerts_out = Path(tmp, "alerts.jsonl")
        argv = [
            *(f"--input={g}" for g in inputs),
            *(f"--rules={p}" for p in rule_paths),
            f"--alerts-out={alerts_out}",
            f"--dead-letter={Path(tmp, 'dead-letters.jsonl')}",
            *options,
            *([f"--engine-config={engine_config}"] if engine_config else []),
        ]
        report = run(argv, io.StringIO(), progress=f"backtest: {label}")
        with alerts_out.open("rb") as handle:
            alerts = [orjson.loads(line) for line in handle if line.strip()]
    c = report.counters
    err.write(
        f"backtest: {label}: read {c['read']}, normalized {c['normalized']}, dead_lettered "
        f"{c['dead_lettered']}, outside the time range {c['outside_time_range']}, alerts {len(alerts)} "
        f"({time.monotonic() - started:.0f}s)\n"
    )
    return Backtest(report, infos, alerts)


def per_rule(backtest: Backtest) -> list[RuleStats]:
    """Every rule that raised alerts, most severe and noisiest first."""
    stats: dict[str, RuleStats] = {}
    for alert in backtest.alerts:
        rule_id = alert["rule"]["id"]
        if rule_id not in stats:
            stats[rule_id] = RuleStats(backtest.rules[rule_id])
        stats[rule_id].add(alert)
    return sorted(stats.values(), key=lambda s: (-s.info.severity, -s.alerts, s.info.title))


def day_span(alerts: Iterable[dict[str, Any]], since: float | None, until: float | None) -> list[str]:
    """The days the backtest covers: --since to --until when given, else its first to its last alert."""
    days = sorted({a["@timestamp"][:10] for a in alerts})
    first = _utc_day(since) if since is not None else _day(days[0] if days else None)
    last = _utc_day(until - 1e-6) if until is not None else _day(days[-1] if days else None)
    if first is None or last is None or last < first:
        return days
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _utc_day(seconds: float) -> date:
    return datetime.fromtimestamp(seconds, UTC).date()


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def compare(new: Backtest, old: Backtest) -> dict[str, Any]:
    """Alerts only the new rules raise, alerts they no longer raise, and rules whose level changed.
    An alert is the same one in both runs when its id is: ids derive from the rule id and the event."""
    old_ids = {a["kubesigma"]["alert_id"] for a in old.alerts}
    new_ids = {a["kubesigma"]["alert_id"] for a in new.alerts}
    levels = [
        {"id": rid, "title": info.title, "from": old.rules[rid].level, "to": info.level}
        for rid, info in sorted(new.rules.items())
        if rid in old.rules and old.rules[rid].level != info.level
    ]
    return {
        "new": [alert_summary(a) for a in new.alerts if a["kubesigma"]["alert_id"] not in old_ids],
        "lost": [alert_summary(a) for a in old.alerts if a["kubesigma"]["alert_id"] not in new_ids],
        "level_changes": levels,
    }


def run_backtest(
    inputs: Sequence[str],
    rules: Sequence[str] = (),
    baseline: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    *,
    as_json: bool = False,
    html_out: str | None = None,
    engine_config: str | None = None,
    suppress_window: str | None = None,
    cluster: str | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """`kubesigma rules backtest`: 0 once the report is written (errors raise a user error: exit 2)."""
    if not inputs:
        raise OptionError("--input is required (a glob of archived audit log files)")
    options = [f"--{k}={v}" for k, v in (("since", since), ("until", until)) if v]
    options += [
        f"--{k}={v}" for k, v in (("suppress-window", suppress_window), ("cluster-name", cluster)) if v
    ]
    window = time_range(since, until)
    expand_inputs(inputs)  # an empty glob fails here, before any rule is compiled
    rule_paths = list(rules) or [str(DEFAULT_RULES), str(DEFAULT_CORRELATION_RULES)]
    new = run_rules(inputs, rule_paths, options, "rules", err, engine_config)
    old = run_rules(inputs, baseline, options, "baseline", err, engine_config) if baseline else None
    days = day_span([*new.alerts, *(old.alerts if old else [])], *window)
    stats = per_rule(new)
    document: dict[str, Any] = {
        "alerts": len(new.alerts),
        "events": new.report.counters["normalized"] - new.report.counters["outside_time_range"],
        "days": days,
        "rules": [s.as_dict(max(len(days), 1)) for s in stats],
    }
    if old is not None:
        document["baseline_alerts"] = len(old.alerts)
        document.update(compare(new, old))
    if html_out:
        Path(html_out).write_text(render_html(document, inputs), encoding="utf-8")
        err.write(f"backtest: report written to {html_out}\n")
    if as_json:
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_table(document, out)
    return 0


# -- terminal ------------------------------------------------------------------------------------


def print_table(document: dict[str, Any], out: TextIO) -> None:
    days = document["days"]
    span = f" over {len(days)} day{'s' * (len(days) != 1)} ({days[0]} to {days[-1]})" if days else ""
    out.write(f"{document['alerts']} alerts from {document['events']} events{span}\n")
    rows = document["rules"]
    if rows:
        width = max(len(r["title"]) for r in rows)
        out.write(
            f"\n{'level':<10}{'alerts':>7}{'/day':>8}{'ids':>5}{'srcs':>5}{'nss':>5}  "
            f"{'rule':<{width}}  top group\n"
        )
        for r in rows:
            top = r["top_groups"][0] if r["top_groups"] else {"group": "", "alerts": 0}
            out.write(
                f"{r['level']:<10}{r['alerts']:>7}{r['alerts_per_day']:>8}{r['identities']:>5}"
                f"{r['sources']:>5}{r['namespaces']:>5}  {r['title']:<{width}}  "
                f"{top['group']} ({top['alerts']})\n"
            )
    if "new" not in document:
        return
    out.write(
        f"\nagainst the baseline ({document['baseline_alerts']} alerts): {len(document['new'])} new, "
        f"{len(document['lost'])} lost, {len(document['level_changes'])} level changes\n"
    )
    for change in document["level_changes"]:
        out.write(f"  level {change['from']} → {change['to']}: {change['title']} {change['id']}\n")
    for kind in ("new", "lost"):
        for a in document[kind]:
            out.write(f"  {kind:<5}{a['@timestamp']}  {a['rule']['name']}  {a['group']}\n")


# -- HTML ----------------------------------------------------------------------------------------

LEVEL_COLOURS = {
    "critical": "#8e1b1b",
    "high": "#c0392b",
    "medium": "#d68910",
    "low": "#2471a3",
    "informational": "#7f8c8d",
}
MAX_BAR = 36.0  # a day's bar is never wider than this, so one day does not fill the chart


def histogram_svg(
    per_day: dict[str, int], days: Sequence[str], level: str, *, width: int = 560, height: int = 110
) -> str:
    """Alerts per day as an inline SVG bar chart over every day of the backtest (empty days too)."""
    top = max([*per_day.values(), 1])
    step = min(width / max(len(days), 1), MAX_BAR + 4)
    colour = LEVEL_COLOURS.get(level, "#555")
    left, base = 36, 8 + height
    parts = [
        f'<line x1="{left}" y1="{base}" x2="{left + step * len(days):.1f}" y2="{base}" stroke="#999"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end">{top}</text>',
        f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>',
    ]
    # Label every day when they fit, else the first, the last and a few between.
    every = max(1, round(len(days) / 6)) if step < 70 else 1
    for i, day in enumerate(days):
        x = left + i * step
        count = per_day.get(day, 0)
        if i % every == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{base + 16}" text-anchor="middle">{day[5:]}</text>'
            )
        if not count:
            continue
        h = max(height * count / top, 1.0)
        parts.append(
            f'<rect class="bar" data-day="{day}" data-alerts="{count}" x="{x + 2:.1f}" y="{base - h:.1f}" '
            f'width="{max(step - 4, 1):.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{day}: {count} alerts</title></rect>"
        )
    total_width = int(left + step * max(len(days), 1) + 24)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_width}" height="{height + 30}" '
        f'font-size="11" role="img" aria-label="alerts per day">{"".join(parts)}</svg>'
    )


def render_html(document: dict[str, Any], inputs: Sequence[str]) -> str:
    """One page, no external assets (no scripts, fonts or images to fetch): it opens from a mail."""
    e = html.escape
    days = document["days"]
    overview = "".join(
        f'<tr><td><span class="level {e(r["level"])}">{e(r["level"])}</span></td>'
        f'<td class="title"><a href="#rule-{e(r["id"])}">{e(r["title"])}</a></td><td>{r["alerts"]}</td>'
        f"<td>{r['alerts_per_day']}</td><td>{r['identities']}</td><td>{r['sources']}</td>"
        f"<td>{r['namespaces']}</td></tr>"
        for r in document["rules"]
    )
    sections = []
    for r in document["rules"]:
        groups = "".join(f"<li>{e(g['group'])} <b>{g['alerts']}</b></li>" for g in r["top_groups"])
        sections.append(
            f'<section class="rule" id="rule-{e(r["id"])}"><h3><span class="level {e(r["level"])}">'
            f"{e(r['level'])}</span> {e(r['title'])} <small>{e(r['id'])}</small></h3>"
            f'<div class="row">{histogram_svg(r["days"], days, r["level"])}'
            f"<div><p>{r['alerts']} alerts, {r['alerts_per_day']} a day; {r['identities']} identities, "
            f"{r['sources']} source addresses, {r['namespaces']} namespaces</p>"
            f"<p>top groups</p><ol>{groups}</ol></div></div></section>"
        )
    diff = ""
    if "new" in document:
        rows = "".join(
            f'<tr class="{kind}"><td>{kind}</td><td>{e(a["@timestamp"])}</td>'
            f'<td class="title">{e(a["rule"]["name"])}</td><td class="title">{e(a["group"])}</td></tr>'
            for kind in ("new", "lost")
            for a in document[kind]
        )
        levels = "".join(
            f"<li>{e(c['title'])}: {e(c['from'])} → {e(c['to'])}</li>" for c in document["level_changes"]
        )
        diff = (
            f'<section id="diff"><h2>Against the baseline: {len(document["new"])} new, '
            f"{len(document['lost'])} lost, {len(document['level_changes'])} level changes</h2>"
            f"<ul>{levels}</ul><table><tr><th></th><th>time</th><th>rule</th><th>group</th></tr>{rows}"
            "</table></section>"
        )
    span = f"{days[0]} to {days[-1]} ({len(days)} days)" if days else "no alerts"
    style = (
        "body{font-family:sans-serif;margin:1.5em 2em;color:#222;max-width:1100px}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #ddd;padding:2px 8px;"
        "text-align:right}.title{text-align:left}a{color:inherit}small{color:#888;font-weight:normal}"
        ".level{color:#fff;padding:0 6px;border-radius:3px;font-size:small}"
        "section.rule{border-top:1px solid #ddd;padding-top:.3em}.row{display:flex;gap:1.5em;"
        "align-items:flex-start}.row p{margin:.3em 0}ol{margin:0;padding-left:1.4em;font-size:small}"
        + "".join(f".{k}{{background:{v}}}" for k, v in LEVEL_COLOURS.items())
        + "tr.new td{background:#e8f6e8}tr.lost td{background:#fbe9e7}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>kubesigma backtest</title>'
        f"<style>{style}</style></head><body><h1>kubesigma backtest</h1>"
        f'<p id="summary">{document["alerts"]} alerts from {document["events"]} events, {span}. Input: '
        f"{e(', '.join(inputs))}</p>{diff}<h2>Rules</h2><table><tr><th>level</th>"
        '<th class="title">rule</th><th>alerts</th><th>per day</th><th>identities</th><th>sources</th>'
        f"<th>namespaces</th></tr>{overview}</table>{''.join(sections)}</body></html>\n"
    )
