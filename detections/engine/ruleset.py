"""RuleSet: the loaded, compiled rules and the per-event matching entry points.

Routing: each event view's logsource selects the rules of its product/service (category only when
the event declares one). Dispatch: within a logsource, the values of a few cheap discriminating
fields (verb, resource, subresource for Kubernetes) select a function generated for exactly that
key, in which leaves over those fields are already folded to constants; functions are compiled on
first sight of a key and cached.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaString

from kubesigma.connectors.model import AuditEvent, LogSource, RuleInfo
from kubesigma.connectors.model.logsources import profile_of
from kubesigma.detections.config import EngineConfig
from kubesigma.detections.engine import catalog
from kubesigma.detections.engine import compile as C
from kubesigma.detections.engine.fields import MISSING, resolve, split_path
from kubesigma.detections.engine.load import (
    ParsedFile,
    RuleLoadError,
    RuleReport,
    find_line,
    parse_file,
    read_sources,
)
from kubesigma.detections.engine.modifiers import UnsupportedRule
from kubesigma.detections.lists import load_value_lists
from kubesigma.detections.mapping import evaluation_pipeline

# Past this many distinct keys a logsource uses one unspecialised function for new keys.
MAX_BUCKETS = 4096


@dataclass
class CompiledRule:
    info: RuleInfo
    ir: Any
    sigma: SigmaRule


def _applies(rule: LogSource, event: LogSource) -> bool:
    # A rule without a product names no event kubesigma reads (`rules check` warns about it).
    if not rule.product or rule.product != event.product.lower():
        return False
    if rule.service and rule.service != event.service.lower():
        return False
    return not (event.category and rule.category and rule.category != event.category.lower())


class _Route:
    """The rules of one event logsource and their per-key compiled functions."""

    def __init__(self, rules: list[CompiledRule], dispatch: tuple[str, ...]):
        self.rules = rules
        self.dispatch = dispatch if rules else ()
        self.buckets: dict[tuple[Any, ...], Any] = {}
        self._by_source: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._by_shape: dict[tuple[Any, ...], Any] = {}
        self._levels: dict[tuple[Any, ...], Any] = {}
        self._generic: Any = None
        self.necessary = [[C.necessary_values(r.ir, f) for f in self.dispatch] for r in rules]
        if self.dispatch:
            self.match = C.dispatcher(self.dispatch, self.buckets, self._bucket)  # type: ignore[method-assign,assignment]

    def match(self, doc: dict[str, Any]) -> list[RuleInfo]:
        """Replaced per instance by the generated dispatcher when the logsource has dispatch fields."""
        return (self.buckets.get(()) or self._bucket(()))(doc)

    def _bucket(self, key: tuple[Any, ...]) -> Any:
        key = C.dispatch_key(key)
        fn = self.buckets.get(key)
        if fn is not None:  # a value read in another form than its key's (a list, a number)
            return fn
        if len(self.buckets) >= MAX_BUCKETS:
            if self._generic is None:
                self._generic = C.build([(r.info, r.ir) for r in self.rules])
            return self._generic
        known = {f: v for f, v in zip(self.dispatch, key, strict=True) if v is not C.UNKNOWN}
        lowered = [v.lower() if isinstance(v, str) else v for v in key]
        selected = []
        for rule, needs in zip(self.rules, self.necessary, strict=True):
            ok = True
            for need, v in zip(needs, lowered, strict=True):
                if need is not None and v is not C.UNKNOWN and (v is MISSING or v not in need):
                    ok = False
                    break
            if ok:
                ir = C.fold(rule.ir, known)
                if ir is not False:
                    selected.append((rule.info, ir))
        fn = self._specialized(selected, frozenset(known))
        self.buckets[key] = fn
        return fn

    def _specialized(self, selected: list[tuple[RuleInfo, Any]], known: frozenset[str]) -> Any:
        """The function for these (folded) rules: keyed next on the first low-cardinality field
        they read whose value is not known yet (a `_Level`), else their generated code."""
        if not selected:
            return _no_match
        names = C.specialize_fields([ir for _, ir in selected]) - known
        if not names:
            return self._compiled_for(selected)
        # Who is acting (user, groups, impersonation, address, agent) in one level: these fields
        # vary together (a node, a controller), so their combinations stay few. Then the first
        # field by rank with the others under the same object; all at once when few are left.
        identity = names & C.IDENTITY_FIELDS
        if identity:
            chosen: frozenset[str] | set[str] = identity
        elif len(names) <= LEVEL_FIELDS:
            chosen = names
        else:
            root = min(names, key=C.specialize_rank).split(".", 1)[0]
            chosen = {n for n in names if n.split(".", 1)[0] == root}
        paths = tuple(sorted(chosen, key=C.specialize_rank))
        signature = (paths, known, tuple((id(info), C.shape(ir)) for info, ir in selected))
        fn = self._levels.get(signature)
        if fn is None:
            if len(self._levels) >= MAX_FUNCTIONS:
                self._levels.clear()
            fn = self._levels[signature] = _Level(self, selected, paths, known).match
        return fn

    def _compiled_for(self, selected: list[tuple[RuleInfo, Any]]) -> Any:
        """The generated function over these (folded) rules; one per distinct code."""
        if not selected:
            return _no_match
        signature = tuple((id(info), C.shape(ir)) for info, ir in selected)
        fn = self._by_shape.get(signature)
        if fn is None:
            source, namespace = C.generate(selected)
            # Same code over the same rules (constants are bound by position) → reuse the function.
            by_source = (source, tuple(info.id for info, _ in selected))
            fn = self._by_source.get(by_source)
            if fn is None:
                exec(compile(source, f"<kubesigma rules {len(selected)}>", "exec"), namespace)
                fn = self._by_source[by_source] = namespace["match"]
            if len(self._by_shape) >= MAX_FUNCTIONS:  # tables keep the functions they use
                self._by_shape.clear()
                self._by_source.clear()
            self._by_shape[signature] = fn
        return fn


def _no_match(doc: dict[str, Any]) -> list[RuleInfo]:
    return []


# Values one level of a bucket remembers; past it the level stops keying on its field.
SPECIALIZED_LIMIT = 4096
# A level keys on all fields left when they are this few (one call instead of one per object).
LEVEL_FIELDS = 3
# Generated functions and levels a logsource keeps for reuse; past it the caches start over.
MAX_FUNCTIONS = 4096


class _Level:
    """One step of a dispatch bucket's specialization on low-cardinality fields (user, user agent,
    groups, source address, decision ...; fields under one object together): their values select
    the function for the rules folded with them, the next level or the code of what remains. The
    rules keyed on identities (anonymous users, attack tools, system users from public
    addresses), which the dispatch key cannot skip, reduce to nothing after a level or three for
    nearly every event, and only the fields on the way are read.

    Folding costs a walk of the rules per new value: past SPECIALIZED_LIMIT values (a field that
    varies more than expected, e.g. the source addresses of a scan) the level stops keying on its
    fields and hands every event to the levels below it."""

    def __init__(
        self,
        route: _Route,
        selected: list[tuple[RuleInfo, Any]],
        paths: tuple[str, ...],
        known: frozenset[str],
    ):
        self.route = route
        self.selected = selected
        self.paths = paths
        self.parts = [split_path(p) for p in paths]
        self.known = known | set(paths)
        self.table: dict[Any, Any] = {}
        self.fallback: Any = None
        numeric = frozenset(
            leaf.field
            for _, ir in selected
            for leaf in C.leaves(ir)
            if leaf.field in paths and "n" in leaf.needs
        )
        self.match = C.level_function(paths, self.table, self.specialize, numeric)

    def specialize(self, key: Any, doc: dict[str, Any]) -> Any:
        if self.fallback is not None:
            return self.fallback
        key = C.canonical_key(key, len(self.paths))
        fn = self.table.get(key)
        if fn is not None:  # a value read in another form than its key's (a number, a list with one)
            return fn
        values = (key,) if len(self.paths) == 1 else key
        # A value that cannot key a table (an object) is UNKNOWN: its field is not folded.
        known = {
            path: resolve(doc, parts)
            for path, parts, v in zip(self.paths, self.parts, values, strict=True)
            if v is not C.UNKNOWN
        }
        residual = []
        for info, ir in self.selected:
            folded = C.fold(ir, known)
            if folded is not False:
                residual.append((info, folded))
        fn = self.route._specialized(residual, self.known)
        if len(self.table) >= SPECIALIZED_LIMIT:
            self.table.clear()
            self.fallback = self.route._specialized(self.selected, self.known)
        else:
            self.table[key] = fn
        return fn


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


def _warnings(rule: SigmaRule, ir: Any) -> list[str]:
    ls = rule.logsource
    warns = []
    for leaf in C.leaves(ir):
        if leaf.kind == "tpart" and leaf.field not in catalog.TIME_FIELDS:
            warns.append(f"time-part modifier on `{leaf.field}`, which is not an event time field")
    if ((ls.product or "").lower(), (ls.service or "").lower()) not in catalog.KNOWN_FIELDS:
        warns.append(f"no kubesigma event has logsource {ls.product}/{ls.service}: the rule never runs")
    for name in sorted(C.field_names(ir) - {C.KEYWORD}):
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
        parsed: list[ParsedFile] = [parse_file(p, t) for p, t in [*self._sources, *self._filter_sources]]
        filters: list[tuple[SigmaFilter, ParsedFile]] = []
        detections: list[tuple[SigmaRule, ParsedFile, int]] = []
        correlations: list[tuple[SigmaCorrelationRule, ParsedFile, int]] = []
        for pf in parsed:
            reports.extend(pf.reports)
            for n, r in enumerate(pf.rules):
                if isinstance(r, SigmaCorrelationRule):
                    correlations.append((r, pf, n))
                else:
                    detections.append((r, pf, n))
            filters.extend((f, pf) for f in pf.filters)
            for f in pf.filters:
                reports.append(RuleReport(pf.path, str(f.id) if f.id else None, f.title, True, kind="filter"))

        pipeline = evaluation_pipeline(lists=self._lists)
        compiled: list[CompiledRule] = []
        by_key: dict[str, Any] = {}
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
                for f, fpf in filters:
                    try:
                        rule = f.apply_on_rule(rule)  # type: ignore[assignment]
                    except SigmaError as e:
                        raise SigmaError(f"filter {fpf.path} ({f.title}) cannot apply: {e}") from e
                pipeline.apply(rule)
                ir = C.rule_ir(rule)
                C.build([(info, ir)])  # compile now so a bad rule is refused at load, not mid-stream
            except (SigmaError, UnsupportedRule, ValueError, TypeError, KeyError) as e:
                report.ok = False
                report.error = str(e) if isinstance(e, UnsupportedRule) else f"{e}"
                report.line = find_line(pf.text, e)
                continue
            report.warnings.extend(_warnings(rule, ir))
            if not rule.id:
                report.warnings.append(f"rule has no id; it is known as {info.id}")
            compiled.append(CompiledRule(info, ir, rule))
            by_key[info.id] = info
            if info.name:
                by_key[info.name] = info

        # Correlations: kept for the streaming stage, references resolved against loaded rules.
        from sigma.collection import SigmaCollection

        corr_objs = []
        corr_infos = []
        if correlations:
            collection = SigmaCollection(
                [*(c.sigma for c in compiled), *(c for c, _, _ in correlations)],
                resolve_references=False,
            )
            for corr, pf, n in correlations:
                report = RuleReport(
                    pf.path, str(corr.id) if corr.id else None, corr.title, True, kind="correlation"
                )
                reports.append(report)
                try:
                    corr.resolve_rule_references(collection)
                except SigmaError as e:
                    report.ok, report.error, report.line = False, str(e), find_line(pf.text, e)
                    continue
                info = _rule_info(corr, pf.path, n)
                corr_objs.append(corr)
                corr_infos.append(info)
                by_key[info.id] = info
                if info.name:
                    by_key[info.name] = info

        cfg = self.config
        active = [
            c
            for c in compiled
            if c.info.id not in cfg.disabled_ids
            and not ({t.lower() for t in c.info.tags} & cfg.disabled_tags)
        ]
        self._compiled = active
        self._by_key = by_key
        self.rules = tuple(c.info for c in active)
        self.correlation_rules = tuple(corr_objs)
        self.correlation_infos = tuple(corr_infos)
        # Sigma: a correlation with `generate: false` (the default) keeps its base rules from
        # alerting on their own; they still match, so the correlation stage can count them.
        self.correlation_only_ids = frozenset(
            str(ref.rule.id)
            for corr in corr_objs
            if not corr.generate
            for ref in corr.rules or ()
            if isinstance(getattr(ref, "rule", None), SigmaRule) and ref.rule.id
        )
        self.reports = tuple(reports)
        self._routes: dict[LogSource, _Route] = {}
        self._last: tuple[LogSource | None, Any] = (None, None)

    # -- lookups -------------------------------------------------------------------------------

    def rule(self, rule_id: str) -> RuleInfo:
        """A loaded rule (detection or correlation) by id or Sigma `name`."""
        try:
            return self._by_key[rule_id]
        except KeyError:
            raise KeyError(f"no loaded rule has id or name {rule_id!r}") from None

    def __len__(self) -> int:
        return len(self.rules)

    # -- matching ------------------------------------------------------------------------------

    def _route(self, logsource: LogSource) -> _Route:
        route = self._routes.get(logsource)
        if route is None:
            ls = LogSource(
                logsource.product.lower(),
                logsource.service.lower(),
                logsource.category.lower() if logsource.category else None,
            )
            rules = [c for c in self._compiled if _applies(c.info.logsource, ls)]
            route = _Route(rules, profile_of(ls).dispatch)
            self._routes[logsource] = route
        return route

    def match_document(self, logsource: LogSource, doc: dict[str, Any]) -> list[RuleInfo]:
        """Rules of this logsource that match one document (decoded JSON object)."""
        if doc.__class__ is not dict:
            return []
        route = self._routes.get(logsource) or self._route(logsource)
        return route.match(doc)

    def match(self, event: AuditEvent) -> list[RuleInfo]:
        """Rules matching any view of the event, each reported once (views in order; within a view
        the order follows how the rules were folded for the event's values, not their load order)."""
        views = event.views
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
