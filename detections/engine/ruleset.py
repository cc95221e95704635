"""RuleSet: the loaded, compiled rules and the per-event matching entry points.

Loading runs in named steps (`_build`): parse the files, sort out detections, correlations and filters,
compile each detection (filters, the evaluation pipeline, IR, a compile check), resolve the
correlations' references, then leave out disabled rules. Routing: each event view's logsource selects
the rules of its product/service (category only when the event declares one), matched through that
logsource's `Route` (dispatch buckets and specialization levels, `routing.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaString

from kubesigma.connectors.model import AuditEvent, LogSource, RuleInfo
from kubesigma.connectors.model.logsources import profile_of
from kubesigma.detections.config import EngineConfig
from kubesigma.detections.engine import catalog, codegen
from kubesigma.detections.engine.analysis import field_names
from kubesigma.detections.engine.fields import SHARED
from kubesigma.detections.engine.ir import KEYWORD, Node, leaves, rule_ir
from kubesigma.detections.engine.load import (
    ParsedFile,
    RuleLoadError,
    RuleReport,
    find_line,
    parse_file,
    read_sources,
)
from kubesigma.detections.engine.modifiers import UnsupportedRule
from kubesigma.detections.engine.routing import Route
from kubesigma.detections.lists import load_value_lists
from kubesigma.detections.mapping import evaluation_pipeline
from kubesigma.detections.normalized import fires_on_success_only


@dataclass
class CompiledRule:
    """A loaded detection: its metadata, its condition as IR, and the pySigma rule it came from (with
    the filters and the evaluation pipeline applied). `filters` names the Sigma filters applied to it
    by the prefix pySigma gave their detections (`_filt_<random>_`)."""

    info: RuleInfo
    ir: Node
    sigma: SigmaRule
    filters: dict[str, str] = field(default_factory=dict)


def applies(rule: LogSource, event: LogSource) -> bool:
    """Whether a rule of logsource `rule` runs on an event view of logsource `event` (routing)."""
    # A rule without a product names no event kubesigma reads (`rules check` warns about it).
    if not rule.product or rule.product != event.product.lower():
        return False
    if rule.service and rule.service != event.service.lower():
        return False
    return not (event.category and rule.category and rule.category != event.category.lower())


def _rule_info(rule: SigmaRule | SigmaCorrelationRule, path: str, n: int) -> RuleInfo:
    rid = str(rule.id) if rule.id else f"{Path(path).stem}#{n}"
    level = rule.level.name.lower() if rule.level is not None else "medium"
    if isinstance(rule, SigmaCorrelationRule):
        ls = LogSource("correlation", "correlation")
        for ref in rule.rules or ():
            target = getattr(ref, "rule", None)
            if isinstance(target, SigmaRule):
                ls = _logsource(target)
                break
        group_by = tuple(rule.group_by or ())
        kind = "correlation"
    else:
        ls = _logsource(rule)
        group_by = ()
        kind = "detection"
    return RuleInfo(
        id=rid,
        title=rule.title or rid,
        level=level,
        logsource=ls,
        path=path,
        description=rule.description or "",
        status=rule.status.name.lower() if rule.status else None,
        tags=tuple(str(t) for t in (rule.tags or ())),
        references=tuple(rule.references or ()),
        falsepositives=tuple(rule.falsepositives or ()),
        name=rule.name,
        group_by=group_by,
        kind=kind,
        success_only=fires_on_success_only(rule),
    )


def _logsource(rule: SigmaRule) -> LogSource:
    ls = rule.logsource
    return LogSource(
        (ls.product or "").lower(), (ls.service or "").lower(), ls.category.lower() if ls.category else None
    )


def _detection_items(rule: SigmaRule) -> list[SigmaDetectionItem]:
    out: list[SigmaDetectionItem] = []

    def walk(d: SigmaDetection | SigmaDetectionItem) -> None:
        if isinstance(d, SigmaDetection):
            for item in d.detection_items:
                walk(item)
        else:
            out.append(d)

    for det in rule.detection.detections.values():
        walk(det)
    return out


def _warnings(rule: SigmaRule, ir: Node) -> list[str]:
    ls = rule.logsource
    warns = []
    for leaf in leaves(ir):
        if leaf.kind == "tpart" and leaf.field not in catalog.TIME_FIELDS:
            warns.append(f"time-part modifier on `{leaf.field}`, which is not an event time field")
    if ((ls.product or "").lower(), (ls.service or "").lower()) not in catalog.KNOWN_FIELDS:
        warns.append(f"no kubesigma event has logsource {ls.product}/{ls.service}: the rule never runs")
    for name in sorted(field_names(ir) - {KEYWORD}):
        if catalog.unknown_field(ls.product, ls.service, name):
            warns.append(f"field `{name}` is carried by no {ls.product}/{ls.service} event")
    if (ls.product or "").lower() == "gcp":
        for item in _detection_items(rule):
            if item.field == "protoPayload.methodName":
                for v in item.value:
                    problem = catalog.gke_method_problem(v) if isinstance(v, SigmaString) else None
                    if problem and problem not in warns:
                        warns.append(problem)
    return warns


class RuleSet:
    """Loaded Sigma rules, compiled, ready to match audit events (picklable: recompiles on unpickle)."""

    rules: tuple[RuleInfo, ...]
    correlation_rules: tuple[Any, ...]  # pySigma SigmaCorrelationRule, references resolved
    correlation_infos: tuple[RuleInfo, ...]
    correlation_only_ids: frozenset[str]  # base rules that must not alert on their own
    reports: tuple[RuleReport, ...]

    def __init__(
        self,
        sources: list[tuple[str, str]],
        filter_sources: list[tuple[str, str]],
        lists: dict[str, list[str]],
        config: EngineConfig,
        read_reports: Sequence[RuleReport] = (),
    ):
        self._sources = sources
        self._filter_sources = filter_sources
        self._lists = lists
        self.config = config
        self._read_reports = list(read_reports)
        self._build()

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def _from_paths(cls, paths: Sequence[str | Path], config: EngineConfig | None) -> RuleSet:
        config = config or EngineConfig()
        if isinstance(paths, str | Path):
            paths = [paths]
        sources, reports = read_sources(paths)
        filter_sources, filter_reports = read_sources(config.filter_paths)
        try:
            lists = load_value_lists(config.list_paths)
        except ValueError as e:
            lists = {}
            reports.append(RuleReport(str(config.list_paths), None, None, False, str(e)))
        return cls(sources, filter_sources, lists, config, [*reports, *filter_reports])

    @classmethod
    def from_yaml(
        cls, texts: Sequence[str], config: EngineConfig | None = None, *, name: str = "<memory>"
    ) -> RuleSet:
        """Rules given as YAML text (one file's content each), e.g. generated variants; raises like load()."""
        config = config or EngineConfig()
        sources = [(f"{name}/{i}.yml", t) for i, t in enumerate(texts)]
        filter_sources, reports = read_sources(config.filter_paths)
        ruleset = cls(sources, filter_sources, load_value_lists(config.list_paths), config, reports)
        if any(not r.ok for r in ruleset.reports):
            raise RuleLoadError(ruleset.reports)
        return ruleset

    @classmethod
    def load(cls, paths: Sequence[str | Path], config: EngineConfig | None = None) -> RuleSet:
        """Load every Sigma rule under the paths; raise RuleLoadError if any fails to load or compile."""
        ruleset = cls._from_paths(paths, config)
        if any(not r.ok for r in ruleset.reports):
            raise RuleLoadError(ruleset.reports)
        return ruleset

    @classmethod
    def check(cls, paths: Sequence[str | Path], config: EngineConfig | None = None) -> list[RuleReport]:
        """A report per rule (and per unreadable file); never raises for bad rules."""
        return list(cls._from_paths(paths, config).reports)

    def _build(self) -> None:
        reports: list[RuleReport] = list(self._read_reports)
        files = [parse_file(p, t) for p, t in [*self._sources, *self._filter_sources]]
        detections, correlations, filters = _sort_out(files, reports)
        compiled = _compile_detections(detections, filters, evaluation_pipeline(lists=self._lists), reports)
        corr_objs, corr_infos = _resolve_correlations(correlations, compiled, reports)
        active = _enabled(compiled, self.config)

        self._compiled = active
        self._detections = {c.info.id: c for c in compiled}
        self._by_key = _by_key_or_name([*(c.info for c in compiled), *corr_infos])
        self.rules = tuple(c.info for c in active)
        self.correlation_rules = tuple(corr_objs)
        self.correlation_infos = tuple(corr_infos)
        self.correlation_only_ids = _correlation_only_ids(corr_objs)
        self.reports = tuple(reports)
        self._routes: dict[LogSource, Route] = {}
        self._last: tuple[LogSource | None, Any] = (None, None)

    # -- lookups -------------------------------------------------------------------------------

    def rule(self, rule_id: str) -> RuleInfo:
        """A loaded rule (detection or correlation) by id or Sigma `name`."""
        try:
            return self._by_key[rule_id]
        except KeyError:
            raise KeyError(f"no loaded rule has id or name {rule_id!r}") from None

    def detection(self, rule_id: str) -> CompiledRule:
        """A loaded single-event rule by id or Sigma `name`, disabled ones too (`rules explain`)."""
        compiled = self._detections.get(self.rule(rule_id).id)
        if compiled is None:
            raise KeyError(f"{rule_id!r} is a correlation rule, not a single-event rule")
        return compiled

    def enabled(self, rule_id: str) -> bool:
        """Whether the engine configuration leaves the rule on."""
        return any(c.info.id == rule_id for c in self._compiled)

    def source(self, path: str) -> str:
        """The text of a rule file as it was loaded."""
        return next(text for p, text in self._sources if p == path)

    def __len__(self) -> int:
        return len(self.rules)

    # -- matching ------------------------------------------------------------------------------

    def _route(self, logsource: LogSource) -> Route:
        route = self._routes.get(logsource)
        if route is None:
            ls = LogSource(
                logsource.product.lower(),
                logsource.service.lower(),
                logsource.category.lower() if logsource.category else None,
            )
            rules = [(c.info, c.ir) for c in self._compiled if applies(c.info.logsource, ls)]
            route = Route(rules, profile_of(ls))
            self._routes[logsource] = route
        return route

    def match_document(self, logsource: LogSource, doc: dict[str, Any]) -> list[RuleInfo]:
        """Rules of this logsource that match one document (decoded JSON object)."""
        if doc.__class__ is not dict:
            return []
        if SHARED:  # nothing derived from another event's lists
            SHARED.clear()
        route = self._routes.get(logsource) or self._route(logsource)
        return route.match(doc)

    def match(self, event: AuditEvent) -> list[RuleInfo]:
        """Rules matching any view of the event, each reported once (views in order; within a view
        the order follows how the rules were folded for the event's values, not their load order)."""
        views = event.views
        if SHARED:  # nothing derived from another event's lists
            SHARED.clear()
        if len(views) == 1:
            logsource, doc = views[0]
            if doc.__class__ is not dict:
                return []
            # Events share their LogSource object: an identity test spares the dataclass hash
            # (one tuple, replaced whole, so threads sharing the rule set never see half of it).
            last_logsource, route_match = self._last
            if logsource is not last_logsource:
                route_match = (self._routes.get(logsource) or self._route(logsource)).match
                self._last = (logsource, route_match)
            return route_match(doc)
        out: list[RuleInfo] = []
        seen: set[int] = set()
        for logsource, doc in views:
            for info in self.match_document(logsource, doc):
                if id(info) not in seen:  # one RuleInfo object per loaded rule
                    seen.add(id(info))
                    out.append(info)
        return out

    def match_batch(self, events: Sequence[AuditEvent]) -> list[list[RuleInfo]]:
        match = self.match
        return [match(e) for e in events]

    # -- pickling: compiled code is not picklable, so ship the sources and rebuild ---------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "sources": self._sources,
            "filter_sources": self._filter_sources,
            "lists": self._lists,
            "config": self.config,
            "read_reports": self._read_reports,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._sources = state["sources"]
        self._filter_sources = state["filter_sources"]
        self._lists = state["lists"]
        self.config = state["config"]
        self._read_reports = state["read_reports"]
        self._build()

    def __deepcopy__(self, memo: dict[int, Any]) -> RuleSet:
        clone = RuleSet.__new__(RuleSet)
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return clone


# -- the steps of loading ------------------------------------------------------------------------

Detections = list[tuple[SigmaRule, ParsedFile, int]]  # a rule, its file, its position in the file
Correlations = list[tuple[SigmaCorrelationRule, ParsedFile, int]]
Filters = list[tuple[SigmaFilter, ParsedFile]]


def _sort_out(files: list[ParsedFile], reports: list[RuleReport]) -> tuple[Detections, Correlations, Filters]:
    """The files' detections, correlations and filters; each file's reports, then one per filter."""
    detections: Detections = []
    correlations: Correlations = []
    filters: Filters = []
    for pf in files:
        reports.extend(pf.reports)
        for n, r in enumerate(pf.rules):
            if isinstance(r, SigmaCorrelationRule):
                correlations.append((r, pf, n))
            else:
                detections.append((r, pf, n))
        filters.extend((f, pf) for f in pf.filters)
        for f in pf.filters:
            reports.append(RuleReport(pf.path, str(f.id) if f.id else None, f.title, True, kind="filter"))
    return detections, correlations, filters


def _compile_detections(
    detections: Detections, filters: Filters, pipeline: ProcessingPipeline, reports: list[RuleReport]
) -> list[CompiledRule]:
    """Each detection with the filters and the evaluation pipeline applied, as IR, compiled once so a
    bad rule is refused at load and not mid-stream; a report per rule (a repeated id is refused)."""
    compiled: list[CompiledRule] = []
    seen_ids: dict[str, str] = {}
    for rule, pf, n in detections:
        info = _rule_info(rule, pf.path, n)
        report = RuleReport(pf.path, info.id, info.title, True)
        reports.append(report)
        if info.id in seen_ids:
            report.ok, report.error = False, f"rule id {info.id} is also used by {seen_ids[info.id]}"
            continue
        seen_ids[info.id] = pf.path
        try:
            rule, applied = _filtered(rule, filters)
            pipeline.apply(rule)
            ir = rule_ir(rule)
            codegen.build([(info, ir)], profile_of(info.logsource))
        except (SigmaError, UnsupportedRule, ValueError, TypeError, KeyError) as e:
            report.ok = False
            report.error = str(e) if isinstance(e, UnsupportedRule) else f"{e}"
            report.line = find_line(pf.text, e)
            continue
        report.warnings.extend(_warnings(rule, ir))
        if not rule.id:
            report.warnings.append(f"rule has no id; it is known as {info.id}")
        compiled.append(CompiledRule(info, ir, rule, applied))
    return compiled


def _filtered(rule: SigmaRule, filters: Filters) -> tuple[SigmaRule, dict[str, str]]:
    """The rule with the filters that target it applied, and which did: the prefix pySigma gave each
    one's detections (`_filt_<random>_`), with the filter's title and file."""
    applied: dict[str, str] = {}
    for f, fpf in filters:
        before = set(rule.detection.detections)
        try:
            rule = f.apply_on_rule(rule)  # type: ignore[assignment]
        except SigmaError as e:
            raise SigmaError(f"filter {fpf.path} ({f.title}) cannot apply: {e}") from e
        added = [name for name in rule.detection.detections if name not in before]
        if added:
            applied[added[0][: len("_filt_") + 11]] = f"{f.title} ({fpf.path})"
    return rule, applied


def _resolve_correlations(
    correlations: Correlations, compiled: list[CompiledRule], reports: list[RuleReport]
) -> tuple[list[SigmaCorrelationRule], list[RuleInfo]]:
    """Correlations (kept for the streaming stage) with their references resolved against the
    loaded rules; a report per correlation."""
    corr_objs: list[SigmaCorrelationRule] = []
    corr_infos: list[RuleInfo] = []
    if not correlations:
        return corr_objs, corr_infos
    collection = SigmaCollection(
        [*(c.sigma for c in compiled), *(c for c, _, _ in correlations)],
        resolve_references=False,
    )
    for corr, pf, n in correlations:
        report = RuleReport(pf.path, str(corr.id) if corr.id else None, corr.title, True, kind="correlation")
        reports.append(report)
        try:
            corr.resolve_rule_references(collection)
        except SigmaError as e:
            report.ok, report.error, report.line = False, str(e), find_line(pf.text, e)
            continue
        corr_objs.append(corr)
        corr_infos.append(_rule_info(corr, pf.path, n))
    return corr_objs, corr_infos


def _enabled(compiled: list[CompiledRule], config: EngineConfig) -> list[CompiledRule]:
    """The rules neither disabled by id nor by one of their tags."""
    return [
        c
        for c in compiled
        if c.info.id not in config.disabled_ids
        and not ({t.lower() for t in c.info.tags} & config.disabled_tags)
    ]


def _by_key_or_name(infos: list[RuleInfo]) -> dict[str, RuleInfo]:
    """Loaded rules (disabled ones too) by id and by Sigma `name`."""
    by_key: dict[str, RuleInfo] = {}
    for info in infos:
        by_key[info.id] = info
        if info.name:
            by_key[info.name] = info
    return by_key


def _correlation_only_ids(corr_objs: list[SigmaCorrelationRule]) -> frozenset[str]:
    """Sigma: a correlation with `generate: false` (the default) keeps its base rules from alerting
    on their own; they still match, so the correlation stage can count them."""
    return frozenset(
        str(ref.rule.id)
        for corr in corr_objs
        if not corr.generate
        for ref in corr.rules or ()
        if isinstance(getattr(ref, "rule", None), SigmaRule) and ref.rule.id
    )
