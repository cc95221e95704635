"""Sigma correlation rules compiled into plain, picklable specs: what to count, per which group, how long.

pySigma parses and resolves the rules (by id or name); this module checks that kubesigma can evaluate
them, resolves group-by fields through aliases per referenced rule, orders chained correlations into
levels, and refuses what it cannot evaluate with the rule's file in the message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any, Protocol

import orjson
from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from kubesigma.connectors.model import RuleInfo
from kubesigma.detections.engine.fields import MISSING, cached_resolver, resolve, split_path

# Conditions that can only become true as events arrive: evaluated on each event over the trailing
# window (sliding). The others (lt, lte, eq, neq) need the whole window: evaluated when it closes.
ARRIVAL_OPS = frozenset({"gt", "gte"})
OPS = ("gt", "gte", "lt", "lte", "eq", "neq")
TYPES = (
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
    "value_median",
)
# A multi-valued group-by field (a binding with three subjects) fans out into one group per value;
# past this many combinations an event is counted in the first ones only.
MAX_GROUP_FANOUT = 16
MAX_GROUP_SCAN = 1024  # items of a list-valued group-by field looked at for its distinct values


class CorrelationError(ValueError):
    """Correlation rules kubesigma cannot evaluate; the message names each rule and its file."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"{len(problems)} correlation rule(s) refused:\n" + "\n".join(problems))


class _Rules(Protocol):
    @property
    def correlation_rules(self) -> Sequence[SigmaCorrelationRule]: ...

    def rule(self, rule_id: str) -> RuleInfo: ...


@dataclass(frozen=True, slots=True)
class Condition:
    op: str
    threshold: float
    fields: tuple[str, ...] = ()  # value_* types: the field(s) whose values are aggregated
    percentile: int | None = None

    @property
    def on_arrival(self) -> bool:
        return self.op in ARRIVAL_OPS

    def holds(self, value: float) -> bool:
        t = self.threshold
        op = self.op
        if op == "gt":
            return value > t
        if op == "gte":
            return value >= t
        if op == "lt":
            return value < t
        if op == "lte":
            return value <= t
        if op == "eq":
            return value == t
        return value != t

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


# Extended temporal conditions ("a and not b") as nested tuples: ("ref", index) | ("and"|"or", l, r) | ("not", x).
Expression = tuple[Any, ...]


def evaluate(expr: Expression, seen: set[int]) -> bool:
    kind = expr[0]
    if kind == "ref":
        return expr[1] in seen
    if kind == "not":
        return not evaluate(expr[1], seen)
    if kind == "and":
        return evaluate(expr[1], seen) and evaluate(expr[2], seen)
    return evaluate(expr[1], seen) or evaluate(expr[2], seen)


@dataclass(frozen=True, slots=True)
class CorrelationSpec:
    """One correlation rule as the window logic evaluates it."""

    id: str
    title: str
    type: str
    rules: tuple[str, ...]  # resolved ids of the referenced rules (detections or correlations), in order
    timespan: float  # seconds
    group_by: tuple[str, ...]
    # per referenced rule id: the field path of each group-by name (aliases resolved), in group_by order
    group_paths: dict[str, tuple[tuple[str, ...], ...]]
    value_paths: dict[str, tuple[tuple[str, ...], ...]]  # per rule id: the aggregated field(s)
    condition: Condition | None
    expression: Expression | None = None
    generate: bool = False
    path: str = ""
    level: int = 0  # 0: references detections only; n: references a correlation of level n - 1

    @property
    def on_arrival(self) -> bool:
        """Evaluated as each event arrives over the trailing timespan (else when a window closes)."""
        if self.expression is not None:
            return True
        return self.condition is not None and self.condition.on_arrival

    def groups(self, rule_id: str, doc: Any) -> list[tuple[str, ...]]:
        """The group keys (one value per group-by field) of a document matched by `rule_id`.

        No key when a group-by field is missing or empty (the event cannot be attributed to a group);
        several when a group-by field holds a list (each value is a group of its own).
        """
        paths = self.group_paths[rule_id]
        if not paths:
            return [()]
        if len(paths) == 1:  # the common case: one group-by field, most often one string
            value = cached_resolver(paths[0], MAX_GROUP_SCAN)(doc)
            if value.__class__ is tuple and len(value) == 1:  # a list of one, such as sourceIPs
                value = value[0]
            if value.__class__ is str:
                return [(value,)] if value else []
            return [(v,) for v in _strings(value)]
        choices: list[list[str]] = []
        for parts in paths:
            values = _strings(cached_resolver(parts, MAX_GROUP_SCAN)(doc))
            if not values:
                return []
            choices.append(values)
        out = []
        for combo in product(*choices):
            out.append(tuple(combo))
            if len(out) >= MAX_GROUP_FANOUT:
                break
        return out

    def value(self, rule_id: str, doc: Any) -> Any:
        """The aggregated field's value (a tuple for multi-field conditions), None when missing."""
        paths = self.value_paths.get(rule_id)
        if not paths:
            return None
        values = []
        for parts in paths:
            v = resolve(doc, parts)
            if v is MISSING or v is None or v == ():
                return None
            values.append(_comparable(v[0] if isinstance(v, tuple) and len(v) == 1 else v))
        return values[0] if len(values) == 1 else tuple(values)

    def describe(self) -> str:
        cond = self.condition_text()
        group = f" by {', '.join(self.group_by)}" if self.group_by else ""
        return f"{self.type} {cond} within {self.timespan:g}s{group}"

    def condition_text(self) -> str:
        if self.expression is not None:
            return _expr_text(self.expression, self.rules)
        assert self.condition is not None
        text = str(self.condition)
        if self.condition.fields:
            text = f"{','.join(self.condition.fields)} {text}"
        return text


def _expr_text(expr: Expression, rules: tuple[str, ...]) -> str:
    if expr[0] == "ref":
        return rules[expr[1]]
    if expr[0] == "not":
        return f"not {_expr_text(expr[1], rules)}"
    return f"({_expr_text(expr[1], rules)} {expr[0]} {_expr_text(expr[2], rules)})"


def _comparable(value: Any) -> Any:
    """A field's value as aggregations count it: hashable. An object or a list in it (a field where a
    string was expected) stands for itself by a digest of its JSON, not by its bytes: distinct values
    stay distinct, and the state does not hold the object."""
    if isinstance(value, tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict | list):
        try:
            text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # what orjson cannot write (deep, odd numbers) still has a repr
            text = repr(value).encode("utf-8", "surrogatepass")
        return "json:" + hashlib.blake2b(text, digest_size=16).hexdigest()
    return value


def _strings(value: Any) -> list[str]:
    """The distinct scalar values of a group-by field, as text: at most MAX_GROUP_FANOUT of them, among its
    first MAX_GROUP_SCAN items (the resolver reads no more of a list), so a field holding a huge list
    costs no more than a short one."""
    if value is MISSING or value is None:
        return []
    items = value[:MAX_GROUP_SCAN] if isinstance(value, tuple) else (value,)
    out: dict[str, None] = {}
    for item in items:
        if item is None or isinstance(item, dict | list):
            continue
        text = item if isinstance(item, str) else str(item).lower() if isinstance(item, bool) else str(item)
        if text:
            out[text] = None
            if len(out) >= MAX_GROUP_FANOUT:
                break
    return list(out)


@dataclass(frozen=True)
class CorrelationPlan:
    """Every correlation rule of a rule set, compiled, with the routing of inputs to them."""

    specs: tuple[CorrelationSpec, ...] = ()
    infos: dict[str, RuleInfo] = field(default_factory=dict)
    # rule id -> [(spec id, index of the rule in spec.rules)]
    inputs: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    # rules (detections or correlations) that alert only through a correlation (`generate: false`)
    silenced: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.specs)

    def spec(self, spec_id: str) -> CorrelationSpec:
        return self._by_id[spec_id]

    @property
    def _by_id(self) -> dict[str, CorrelationSpec]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {s.id: s for s in self.specs}
            object.__setattr__(self, "_cache", cache)
        return cache

    @property
    def levels(self) -> int:
        return 1 + max((s.level for s in self.specs), default=-1)

    def at_level(self, level: int) -> tuple[CorrelationSpec, ...]:
        return tuple(s for s in self.specs if s.level == level)

    def routes(self, rule_id: str, level: int) -> Iterator[tuple[CorrelationSpec, int]]:
        for spec_id, index in self.inputs.get(rule_id, ()):
            spec = self.spec(spec_id)
            if spec.level == level:
                yield spec, index

    def alerts_alone(self, rule_id: str) -> bool:
        """Whether matches of this rule (or firings of this correlation) become alerts themselves."""
        return rule_id not in self.silenced


def compile_correlations(ruleset: _Rules, infos: Iterable[RuleInfo] = ()) -> CorrelationPlan:
    """Compile the rule set's correlation rules; raise CorrelationError naming every refused rule."""
    sigma_rules = list(getattr(ruleset, "correlation_rules", ()) or ())
    if not sigma_rules:
        return CorrelationPlan()
    info_list = list(infos) or list(getattr(ruleset, "correlation_infos", ()))
    problems: list[str] = []
    drafts: list[tuple[CorrelationSpec, RuleInfo]] = []
    for n, rule in enumerate(sigma_rules):
        info = info_list[n] if n < len(info_list) else None
        where = _where(rule, info)
        try:
            spec = _compile(rule, ruleset, info)
        except (ValueError, KeyError) as err:
            problems.append(f"{where}: {err}")
            continue
        assert info is not None
        drafts.append((spec, info))
    if problems:
        raise CorrelationError(problems)
    specs = _levels([s for s, _ in drafts], problems)
    if problems:
        raise CorrelationError(problems)
    inputs: dict[str, list[tuple[str, int]]] = {}
    silenced: set[str] = set()
    for spec in specs:
        for index, rid in enumerate(spec.rules):
            inputs.setdefault(rid, []).append((spec.id, index))
            if not spec.generate:
                silenced.add(rid)
    return CorrelationPlan(
        specs=tuple(specs),
        infos={info.id: info for _, info in drafts},
        inputs={k: tuple(v) for k, v in inputs.items()},
        silenced=frozenset(silenced),
    )


def _where(rule: SigmaCorrelationRule, info: RuleInfo | None) -> str:
    path = info.path if info else (str(rule.source.path) if rule.source and rule.source.path else "?")
    return f"{path}: {rule.id or '-'} {rule.title or ''}".rstrip()


def _ref_id(ruleset: _Rules, ref: SigmaRuleReference | str) -> str:
    text = ref.reference if isinstance(ref, SigmaRuleReference) else str(ref)
    try:
        return ruleset.rule(text).id
    except KeyError:
        raise ValueError(f"references {text!r}, which is no loaded rule id or name") from None


def _compile(rule: SigmaCorrelationRule, ruleset: _Rules, info: RuleInfo | None) -> CorrelationSpec:
    if info is None:
        raise ValueError("the engine reported no metadata for this correlation rule")
    if rule.errors:
        raise ValueError("; ".join(str(e) for e in rule.errors))
    kind = rule.type.name.lower()
    if kind not in TYPES:
        raise ValueError(f"correlation type {kind!r} is not supported (supported: {', '.join(TYPES)})")
    refs = list(rule.referenced_rules or rule.rules or [])
    if not refs:
        raise ValueError("references no rule")
    rule_ids = tuple(dict.fromkeys(_ref_id(ruleset, r) for r in refs))
    group_by = tuple(rule.group_by or ())

    aliases: dict[str, dict[str, str]] = {}
    for alias in rule.aliases:
        mapping = {_ref_id(ruleset, ref): path for ref, path in alias.mapping.items()}
        missing = [rid for rid in rule_ids if rid not in mapping]
        if missing:
            raise ValueError(
                f"alias {alias.alias!r} maps no field for referenced rule(s) {', '.join(missing)}"
            )
        aliases[alias.alias] = mapping

    def path_of(name: str, rid: str) -> tuple[str, ...]:
        return split_path(aliases[name][rid] if name in aliases else name)

    group_paths = {rid: tuple(path_of(g, rid) for g in group_by) for rid in rule_ids}

    condition: Condition | None = None
    expression: Expression | None = None
    value_paths: dict[str, tuple[tuple[str, ...], ...]] = {}
    cond = rule.condition
    if isinstance(cond, SigmaExtendedCorrelationCondition):
        if kind != "temporal":
            raise ValueError(
                f"extended (boolean) conditions are supported for temporal rules only, not {kind}"
            )
        expression = _expression(cond.parsed, ruleset, rule_ids)
    elif isinstance(cond, SigmaCorrelationCondition):
        op = cond.op.name.lower()
        if op not in OPS:
            raise ValueError(f"condition operator {op!r} is not supported")
        fields_: tuple[str, ...] = ()
        if cond.fieldref:
            fields_ = tuple([cond.fieldref] if isinstance(cond.fieldref, str) else cond.fieldref)
        percentile = cond.percentile
        if kind == "value_median":
            percentile = 50
        if kind == "value_percentile" and (percentile is None or not 0 <= percentile <= 100):
            raise ValueError("value_percentile needs a `percentile` between 0 and 100 in its condition")
        condition = Condition(op, float(cond.count), fields_, percentile)
        if kind.startswith("value_"):
            if not fields_:
                raise ValueError(f"{kind} needs a `field` in its condition")
            value_paths = {rid: tuple(path_of(f, rid) for f in fields_) for rid in rule_ids}
        if kind == "temporal_ordered" and not condition.on_arrival:
            raise ValueError(f"temporal_ordered supports gt/gte conditions only, not {op}")
        if (
            kind in ("temporal", "temporal_ordered")
            and condition.threshold > len(rule_ids)
            and op in ARRIVAL_OPS
        ):
            raise ValueError(
                f"condition {condition} can never hold: the rule references {len(rule_ids)} rule(s)"
            )
    else:
        raise ValueError("has no condition")
    return CorrelationSpec(
        id=info.id,
        title=info.title,
        type=kind,
        rules=rule_ids,
        timespan=float(rule.timespan.seconds),
        group_by=group_by,
        group_paths=group_paths,
        value_paths=value_paths,
        condition=condition,
        expression=expression,
        generate=bool(rule.generate),
        path=info.path,
    )


def _expression(node: Any, ruleset: _Rules, rule_ids: tuple[str, ...]) -> Expression:
    if isinstance(node, SigmaRuleReference):
        rid = _ref_id(ruleset, node)
        return ("ref", rule_ids.index(rid))
    if isinstance(node, CorrelationConditionNOT):
        return ("not", _expression(node.args[0], ruleset, rule_ids))
    kind = (
        "and"
        if isinstance(node, CorrelationConditionAND)
        else "or"
        if isinstance(node, CorrelationConditionOR)
        else None
    )
    if kind is None:
        raise ValueError(f"unsupported condition element {node!r}")
    out = _expression(node.args[0], ruleset, rule_ids)
    for arg in node.args[1:]:
        out = (kind, out, _expression(arg, ruleset, rule_ids))
    return out


def _levels(specs: list[CorrelationSpec], problems: list[str]) -> list[CorrelationSpec]:
    """Assign chain levels (a correlation of correlations runs after them); refuse cycles."""
    by_id = {s.id: s for s in specs}
    level: dict[str, int] = {}

    def visit(sid: str, path: tuple[str, ...]) -> int:
        if sid in level:
            return level[sid]
        if sid in path:
            raise ValueError(" -> ".join((*path, sid)))
        spec = by_id[sid]
        deps = [visit(r, (*path, sid)) + 1 for r in spec.rules if r in by_id]
        level[sid] = max(deps, default=0)
        return level[sid]

    out = []
    for spec in specs:
        try:
            lvl = visit(spec.id, ())
        except ValueError as err:
            problems.append(
                f"{spec.path}: {spec.id} {spec.title}: correlation rules reference each other in a cycle: {err}"
            )
            continue
        out.append(replace(spec, level=lvl))
    return out
