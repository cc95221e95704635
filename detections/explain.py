"""Why a rule did or did not match an event (`kubesigma rules explain`), read off the reference
interpreter's trace (`engine/interpret.verdict`), never off the compiled engine.

For each view of the event (a GKE LogEntry is a Kubernetes audit Event and a gcp.audit record) it
says whether routing sends the rule there, and where it does: each named detection (selections, the
rule's own filters, Sigma filters of the engine configuration) item by item, as written and as the
field mapping left it (mapped field, expanded lists), with the value the event has at each field
(credentials redacted, as every output of kubesigma is) and whether it matched; the condition above
the detections, node by node; and the outcome gate of rules about something done.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sigma.modifiers import modifier_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

from kubesigma.connectors.model import AuditEvent, LogSource
from kubesigma.connectors.model.logsources import profile_of
from kubesigma.connectors.redact import redact_document
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.engine.analysis import field_names
from kubesigma.detections.engine.fields import MISSING, resolve, split_path
from kubesigma.detections.engine.interpret import Evaluation, verdict
from kubesigma.detections.engine.ir import CASED, KEYWORD, And, Not, Or, Origin, Origins, rule_ir
from kubesigma.detections.engine.load import parse_file
from kubesigma.detections.engine.modifiers import Leaf
from kubesigma.detections.engine.ruleset import CompiledRule, applies
from kubesigma.detections.normalized import OUTCOME_FIELD, OUTCOMES

# How many values of one test, and characters of one event value, an explanation shows.
SHOWN_VALUES = 6
SHOWN_CHARS = 240

_MODIFIER_NAMES = {cls: name for name, cls in reversed(list(modifier_mapping.items()))}
_TESTS = {
    "eq": "equals",
    "prefix": "starts with",
    "suffix": "ends with",
    "contains": "contains",
    "glob": "matches the wildcard pattern",
    "any": "has any value",
    "re": "matches the regular expression",
    "cidr": "is an address in",
    "num": "equals the number",
    "neqnum": "is a number other than",
    "null": "is null or missing",
    "fieldref": "equals the value of field",
    "tpart": "has the time part",
    "kw": "contains (as a keyword)",
    "kwc": "contains (as a keyword, case-sensitive)",
    "kwany": "is any string (keyword)",
    "kwglob": "matches the keyword pattern",
    "kwcglob": "matches the keyword pattern (case-sensitive)",
    "kwpred": "matches the keyword pattern",
}


@dataclass
class Test:
    """Tests of one field and kind within an item (a list of values is one test with many values)."""

    field: str
    test: str
    values: list[str]
    event_value: Any  # what the event has there (redacted); "(missing)" when it has nothing
    matched: bool
    matched_values: list[str]


@dataclass
class Item:
    """One detection item as written (`objectRef.subresource|contains`) and its tests after mapping."""

    written: str
    matched: bool
    tests: list[Test]


@dataclass
class Detection:
    """A named detection of the rule: a selection, one of the rule's filters, or a Sigma filter."""

    name: str
    role: str  # "selection" | "filter" | "filter file: <title> (<path>)"
    matched: bool
    items: list[Item]


@dataclass
class Step:
    """A node of the condition above the named detections, with its value (depth: nesting)."""

    depth: int
    node: str  # "and" | "or" | "not" | a detection's name | "true" | "false"
    value: bool


@dataclass
class Gate:
    """The outcome gate: a rule that does not name `event.outcome` fires only on success."""

    applies: bool
    reason: str
    succeeded: bool | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # what shows the outcome, as the event has it


@dataclass
class View:
    """The rule on one view of the event."""

    logsource: str
    routed: bool  # routing sends the rule to this view
    why: str
    fires: bool = False
    fields: dict[str, Any] = field(default_factory=dict)  # every field the rule reads, as the view has it
    condition: list[Step] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    gate: Gate | None = None
    document: dict[str, Any] = field(default_factory=dict)  # the view, redacted


@dataclass
class Explanation:
    rule: dict[str, Any]
    event: dict[str, Any]
    views: list[View]
    verdict: bool
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RuleExplainer:
    """One rule made ready to explain events: its IR as the engine builds it from the same rule, with
    where each node comes from, and the rule as written. Raises KeyError for a rule the set does not
    hold, or a correlation rule."""

    def __init__(self, ruleset: RuleSet, rule_id: str) -> None:
        self.compiled = ruleset.detection(rule_id)
        self.origins: Origins = {}
        self.ir = rule_ir(self.compiled.sigma, self.origins)
        self.written = _written_rule(ruleset, self.compiled)
        self.enabled = ruleset.enabled(self.compiled.info.id)
        self.feeds_correlation = self.compiled.info.id in ruleset.correlation_only_ids

    def explain(self, event: AuditEvent, record_format: str | None = None) -> Explanation:
        """The rule's verdict on the event, and why."""
        info = self.compiled.info
        views = [
            _view(self.compiled, self.ir, self.origins, self.written, ls, doc) for ls, doc in event.views
        ]
        fired = self.enabled and any(v.fires for v in views)
        notes: list[str] = []
        if not self.enabled:
            notes.append("the engine configuration disables this rule: it never fires")
        if not any(v.routed for v in views):
            notes.append(f"no view of the event is {info.logsource}: the rule never runs on it")
        if fired and self.feeds_correlation:
            notes.append(
                "the rule feeds a correlation (generate: false): it matches, but raises no alert of its own"
            )
        return Explanation(
            rule={
                "id": info.id,
                "title": info.title,
                "level": info.level,
                "logsource": str(info.logsource),
                "path": info.path,
                "condition": list(self.compiled.sigma.detection.condition),
                "enabled": self.enabled,
            },
            event={
                "format": record_format,
                "source": str(event.source),
                "event_id": event.event_id,
                "user": event.user_name,
                "source_ip": event.source_ip,
                "views": [str(ls) for ls, _ in event.views],
            },
            views=views,
            verdict=fired,
            notes=notes,
        )


def explain(
    ruleset: RuleSet, rule_id: str, event: AuditEvent, record_format: str | None = None
) -> Explanation:
    """The rule's verdict on one event and why (`RuleExplainer` for many events)."""
    return RuleExplainer(ruleset, rule_id).explain(event, record_format)


# ---- one view -------------------------------------------------------------------------------------


def _view(
    compiled: CompiledRule,
    ir: Any,
    origins: Origins,
    written: SigmaRule | None,
    logsource: LogSource,
    doc: dict[str, Any],
) -> View:
    info = compiled.info
    shown = redact_document(doc)
    routed = applies(info.logsource, logsource)
    if not routed:
        return View(str(logsource), False, f"the rule is {info.logsource}: routing skips this view")
    why = f"the rule is {info.logsource}" + (
        f" (category {logsource.category})" if logsource.category else ""
    )
    result = verdict(info, ir, doc)
    view = View(
        str(logsource),
        True,
        why,
        fires=result.fires,
        fields={f: _shown(shown, f) for f in sorted(field_names(ir) - {KEYWORD})},
        document=shown,
    )
    roots: dict[str, Evaluation] = {}
    view.condition = list(_steps(result.condition, origins, roots, 0))
    for name, root in roots.items():
        view.detections.append(_detection(compiled, name, root, origins, written, shown))
    view.gate = _gate(compiled, result.succeeded, shown, logsource)
    return view


def _steps(ev: Evaluation, origins: Origins, roots: dict[str, Evaluation], depth: int) -> Iterator[Step]:
    """The condition above the detections, top down; each detection's subtree goes to `roots`."""
    origin = origins.get(id(ev.node))
    if origin is not None:
        roots.setdefault(origin.detection, ev)
        yield Step(depth, origin.detection, ev.value)
        return
    node = ev.node
    name = (
        "and"
        if isinstance(node, And)
        else "or"
        if isinstance(node, Or)
        else "not"
        if isinstance(node, Not)
        else str(node).lower()
    )
    yield Step(depth, name, ev.value)
    for child in ev.children:
        yield from _steps(child, origins, roots, depth + 1)


def _detection(
    compiled: CompiledRule,
    name: str,
    root: Evaluation,
    origins: Origins,
    written: SigmaRule | None,
    shown: dict[str, Any],
) -> Detection:
    role = "filter" if name.lower().startswith("filter") else "selection"
    display = name
    for prefix, title in compiled.filters.items():
        if name.startswith(prefix):
            role, display = f"filter file: {title}", name[len(prefix) :]
    written_detection = written.detection.detections.get(name) if written is not None else None
    items = [
        _item(item_root, origins, written_detection, compiled.sigma.detection.detections.get(name), shown)
        for item_root in _item_roots(root, origins, written_detection)
    ]
    return Detection(display, role, root.value, items)


def _written_position(position: tuple[int, ...], written: SigmaDetection | None) -> tuple[int, ...]:
    """The position of the item as written that holds a (possibly mapped) item's position."""
    node: Any = written
    for depth, i in enumerate(position):
        if not isinstance(node, SigmaDetection) or i >= len(node.detection_items):
            return position[:depth] or position
        node = node.detection_items[i]
        if isinstance(node, SigmaDetectionItem):
            return position[: depth + 1]
    return position


def _leaves(ev: Evaluation) -> Iterator[Evaluation]:
    if isinstance(ev.node, Leaf):
        yield ev
    for child in ev.children:
        yield from _leaves(child)


def _item_roots(root: Evaluation, origins: Origins, written: SigmaDetection | None) -> Iterator[Evaluation]:
    """The highest nodes of a detection's trace whose leaves all come from one written item."""
    positions: dict[int, frozenset[tuple[int, ...]]] = {}

    def of(ev: Evaluation) -> frozenset[tuple[int, ...]]:
        known = positions.get(id(ev))
        if known is None:
            origin = origins.get(id(ev.node)) if isinstance(ev.node, Leaf) else None
            own = {_written_position(origin.position, written)} if origin is not None else set()
            known = positions[id(ev)] = frozenset(own.union(*(of(c) for c in ev.children)))
        return known

    def roots(ev: Evaluation) -> Iterator[Evaluation]:
        if len(of(ev)) <= 1 or not ev.children:
            yield ev
            return
        for child in ev.children:
            yield from roots(child)

    yield from roots(root)


def _item(
    ev: Evaluation,
    origins: Origins,
    written: SigmaDetection | None,
    processed: SigmaDetection | None,
    shown: dict[str, Any],
) -> Item:
    leaves = list(_leaves(ev))
    origin = next((o for leaf in leaves if (o := origins.get(id(leaf.node))) is not None), None)
    key = _written_key(origin, written, processed)
    groups: dict[tuple[str | None, str], list[Evaluation]] = {}
    for leaf_ev in leaves:
        leaf: Leaf = leaf_ev.node  # type: ignore[assignment]
        groups.setdefault((leaf.field, leaf.kind), []).append(leaf_ev)
    tests = [_test(fld, kind, evs, shown) for (fld, kind), evs in groups.items()]
    if isinstance(ev.node, Not):
        key += "  (negated)"
    return Item(key, ev.value, tests)


def _written_key(
    origin: Origin | None, written: SigmaDetection | None, processed: SigmaDetection | None
) -> str:
    """`field|modifier|...` of the item as written in the rule (as processed when the rule file has no
    such item, e.g. a Sigma filter's)."""
    if origin is None:
        return "(item)"
    for detection in (written, processed):
        node: Any = detection
        for i in _written_position(origin.position, written):
            if not isinstance(node, SigmaDetection) or i >= len(node.detection_items):
                node = None
                break
            node = node.detection_items[i]
        if isinstance(node, SigmaDetectionItem):
            return _key(node)
    return _key(origin.item) if origin.item is not None else "(item)"


def _key(item: SigmaDetectionItem) -> str:
    names = [_MODIFIER_NAMES.get(m, m.__name__) for m in item.modifiers]
    return "|".join([item.field or "(keywords)", *names])


def _test(fld: str | None, kind: str, evs: list[Evaluation], shown: dict[str, Any]) -> Test:
    leaves: list[Leaf] = [e.node for e in evs]  # type: ignore[misc]
    values = [_leaf_value(leaf) for leaf in leaves]
    matched = [v for v, e in zip(values, evs, strict=True) if e.value]
    if fld == KEYWORD:
        name, event_value = "(keywords)", "(every string and key of the event)"
    else:
        name, event_value = str(fld), _shown(shown, str(fld))
    cased = kind in CASED
    base = kind[1:] if cased else kind
    test = _TESTS.get(base, base) + (" (case-sensitive)" if cased else "")
    if kind == "exists":
        test = "exists" if leaves[0].value else "does not exist"
        values = []
    elif kind == "cmp":
        test = f"is a number {leaves[0].extra.get('op', '')}"
    elif kind == "fieldref" and leaves[0].other_field:
        values = [leaves[0].other_field]
    return Test(
        name,
        test if len(values) <= 1 else f"{test} one of {len(values)} values",
        values[:SHOWN_VALUES]
        + ([f"... {len(values) - SHOWN_VALUES} more"] if len(values) > SHOWN_VALUES else []),
        event_value,
        any(e.value for e in evs),
        matched[:SHOWN_VALUES],
    )


def _leaf_value(leaf: Leaf) -> str:
    value = leaf.value
    if value is None:
        return ""
    pattern = getattr(value, "pattern", None) or getattr(getattr(value, "rx", None), "pattern", None)
    if pattern is None:
        return str(value)
    if leaf.kind.endswith("glob"):
        return _wildcards(pattern)
    return str(pattern)


def _wildcards(pattern: str) -> str:
    """A wildcard pattern back from the regular expression the engine made of it (`.*` is `*`)."""
    text = pattern.removeprefix("(?s)").replace("[^\\x00]", ".")
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif text.startswith(".*", i):
            out.append("*")
            i += 2
        elif text[i] == ".":
            out.append("?")
            i += 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _shown(doc: dict[str, Any], fld: str) -> Any:
    value = resolve(doc, split_path(fld))
    if value is MISSING:
        return "(missing)"
    return _clip(list(value) if isinstance(value, tuple) else value)


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[:SHOWN_CHARS] + f"... ({len(value)} characters)"
    if isinstance(value, list):
        return [_clip(v) for v in value[:20]] + ([f"... {len(value) - 20} more"] if len(value) > 20 else [])
    if isinstance(value, dict):
        text = str(value)
        return value if len(text) <= SHOWN_CHARS else f"(an object of {len(value)} members)"
    return value


def _gate(
    compiled: CompiledRule, succeeded: bool | None, shown: dict[str, Any], logsource: LogSource
) -> Gate:
    info = compiled.info
    outcome = OUTCOMES.get((logsource.product.lower(), logsource.service.lower()))
    if not info.success_only:
        reason = (
            f"the rule names {OUTCOME_FIELD} itself"
            if outcome is not None
            else f"{info.logsource} records carry no outcome kubesigma reads"
        )
        return Gate(False, reason)
    fields = {f: _shown(shown, f) for f in sorted(outcome.fields())} if outcome else {}
    verdict_text = "succeeded" if succeeded else "did not succeed (refused, failed, undecided or a dry run)"
    return Gate(
        True,
        f"the rule does not name {OUTCOME_FIELD}: it fires only when the request succeeded; this one "
        f"{verdict_text} ({profile_of(logsource).outcome(shown)})",
        succeeded,
        fields,
    )


def _written_rule(ruleset: RuleSet, compiled: CompiledRule) -> SigmaRule | None:
    """The rule as its file says, before filters and the field mapping (for the items' written keys)."""
    path = compiled.info.path
    try:
        parsed = parse_file(path, ruleset.source(path))
    except StopIteration:
        return None
    for rule in parsed.rules:
        if isinstance(rule, SigmaRule) and str(rule.id) == compiled.info.id:
            return rule
    return None
