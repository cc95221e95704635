"""`kubesigma rules explain --rule ID|FILE --event FILE[:LINE]`: why a rule did or did not match an event.

The event is any record kubesigma reads (native audit Event or EventList, GKE LogEntry, CloudWatch
envelope, CloudTrail record or file, ...), from a file (plain or gzip; `:LINE` picks the record that
starts on that line) or standard input (`--event -`). The explanation comes from the reference
interpreter (`kubesigma.detections.explain`). Exit status: 0 when the rule matches, 1 when it does
not, 2 on an error (one line on standard error).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from kubesigma.connectors.formats import DecodeContext, decode_record, format_of
from kubesigma.connectors.model import AuditEvent, DeadLetter, RawRecord
from kubesigma.connectors.sources.files import STDIN_URI, ReadLimits, read_file, read_opened
from kubesigma.detections.config import EngineConfig, EngineConfigError
from kubesigma.detections.engine import RuleLoadError, RuleSet
from kubesigma.detections.explain import Explanation, View, explain
from kubesigma.pipeline.commands.rules_check import DEFAULT_PATHS

_AT_LINE = re.compile(r"^(.*):(\d+)$")


class ExplainError(ValueError):
    """Something the user gave cannot be explained; the message says what and why."""


def run_explain(
    rule: str,
    event: str,
    *,
    rule_paths: Sequence[str] = (),
    engine_config: str | None = None,
    as_json: bool = False,
    cluster: str | None = None,
    out: TextIO | None = None,
    stdin: Any = None,
) -> int:
    out = out or sys.stdout
    try:
        ruleset, rule_id = _rule(rule, rule_paths, engine_config)
        records = _records(event, stdin)
        explanations: list[Explanation] = []
        for record, fmt in records:
            for outcome in decode_record(record, DecodeContext(cluster=cluster)):
                if isinstance(outcome, AuditEvent):
                    explanations.append(explain(ruleset, rule_id, outcome, fmt))
                elif isinstance(outcome, DeadLetter):
                    raise ExplainError(f"{outcome.source}: not a record kubesigma reads: {outcome.reason}")
        if not explanations:
            raise ExplainError(f"{event}: no audit event in it (a shipper's control message?)")
    except (ExplainError, RuleLoadError, EngineConfigError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"kubesigma rules explain: {first}", file=sys.stderr)
        return 2
    if as_json:
        doc: Any = [e.as_dict() for e in explanations]
        out.write(orjson.dumps(doc[0] if len(doc) == 1 else doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for e in explanations:
            render(e, out)
    return 0 if any(e.verdict for e in explanations) else 1


def _rule(rule: str, paths: Sequence[str], engine_config: str | None) -> tuple[RuleSet, str]:
    """The rule set to explain with, and the rule's id: `rule` is a file (loaded with the given or
    default paths, so its correlations and filters are as in a run) or an id or name among the paths."""
    config = EngineConfig.from_file(engine_config) if engine_config else EngineConfig()
    as_file = Path(rule)
    if as_file.suffix in (".yml", ".yaml") or as_file.is_file():
        if not as_file.is_file():
            raise ExplainError(f"--rule {rule}: no such file")
        ruleset = RuleSet.load([str(as_file)], config)
        ids = [r.id for r in ruleset.rules if str(Path(r.path)) == str(as_file)]
        ids += [r.id for r in ruleset.correlation_infos]
        if len(ids) != 1:
            raise ExplainError(
                f"--rule {rule}: the file holds {len(ids)} rules; give one of their ids with --rules {rule}"
            )
        rule_id = ids[0]
    else:
        ruleset = RuleSet.load(list(paths or DEFAULT_PATHS), config)
        rule_id = rule
    try:
        info = ruleset.rule(rule_id)
        ruleset.detection(rule_id)
    except KeyError as err:
        hint = ""
        if rule_id in {c.id for c in ruleset.correlation_infos} or "correlation" in str(err):
            corr = ruleset.rule(rule_id)
            hint = f" ({corr.title}): explain its input rules instead"
        raise ExplainError(f"--rule {rule}: {err.args[0]}{hint}") from None
    return ruleset, info.id


def _records(event: str, stdin: Any) -> list[tuple[RawRecord, str | None]]:
    """The record(s) named by `--event`, each with the name of the format that claims it."""
    line: int | None = None
    path = event
    m = _AT_LINE.match(event)
    if m and event != "-" and not Path(event).exists():
        path, line = m.group(1), int(m.group(2))
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        items = list(read_opened(stream, STDIN_URI, ReadLimits()))
    else:
        if not Path(path).is_file() and "://" not in path:
            raise ExplainError(f"--event {event}: no such file")
        items = list(read_file(path))
    if line is not None:
        items = [i for i in items if i.source.line == line]
        if not items:
            raise ExplainError(f"--event {event}: no record starts on line {line}")
    dead = [i for i in items if isinstance(i, DeadLetter)]
    if dead:
        raise ExplainError(f"{dead[0].source}: cannot be read: {dead[0].reason}")
    records = [i for i in items if isinstance(i, RawRecord)]
    if len(records) > 1:
        raise ExplainError(f"--event {event}: {len(records)} records; name one as {path}:LINE")
    if not records:
        raise ExplainError(f"--event {event}: no record in it")
    return [(r, format_of(r.value if r.value is not None else _parsed(r))) for r in records]


def _parsed(record: RawRecord) -> Any:
    try:
        return orjson.loads(record.data)
    except orjson.JSONDecodeError:
        return None


# ---- text -----------------------------------------------------------------------------------------


def _yes(value: bool) -> str:
    return "MATCH" if value else "no match"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def render(e: Explanation, out: TextIO) -> None:
    w = out.write
    rule = e.rule
    w(f"rule   {rule['title']} ({rule['id']}, {rule['level']}, {rule['logsource']})\n")
    w(f"       {rule['path']}\n")
    for condition in rule["condition"]:
        w(f"       condition: {condition}\n")
    ev = e.event
    w(f"event  {ev['source']}: {ev['format'] or 'unknown format'}, event id {ev['event_id']}")
    w(f", views {', '.join(ev['views'])}\n")
    for view in e.views:
        _render_view(view, w)
    for note in e.notes:
        w(f"note   {note}\n")
    w(f"\nverdict: {_yes(e.verdict)}\n")


def _render_view(view: View, w: Any) -> None:
    w(f"\nview {view.logsource}: {'routed' if view.routed else 'not routed'} ({view.why})\n")
    if not view.routed:
        return
    w("  fields the rule reads, as this view has them (credentials redacted):\n")
    for name, value in view.fields.items():
        w(f"    {name} = {_value(value)}\n")
    w("  condition, step by step:\n")
    for step in view.condition:
        w(f"    {'  ' * step.depth}{step.node}: {str(step.value).lower()}\n")
    for d in view.detections:
        w(f"  {d.role} {d.name}: {_yes(d.matched)}\n")
        for item in d.items:
            w(f"    {item.written}: {_yes(item.matched)}\n")
            for t in item.tests:
                shown = ", ".join(repr(v) for v in t.values)
                w(f"      {t.field} {t.test} {shown}".rstrip() + f"  -> {_yes(t.matched)}\n")
                w(f"        event has: {_value(t.event_value)}\n")
                if t.matched and len(t.values) > 1:
                    w(f"        matched: {', '.join(repr(v) for v in t.matched_values)}\n")
    gate = view.gate
    if gate is not None:
        w(f"  outcome gate: {gate.reason}\n")
        for name, value in gate.fields.items():
            w(f"    {name} = {_value(value)}\n")
    w(f"  on this view: {_yes(view.fires)}\n")
