"""The rules of one event logsource, matched per event through dispatch buckets and specialization levels.

Dispatch: the values of a few cheap discriminating fields (verb, resource, subresource for Kubernetes:
the profile's `dispatch`) select a function generated for exactly that key, in which leaves over those
fields are already folded to constants. Specialization: below a bucket, levels key on low-cardinality
fields (who is acting first) and fold again, until what is left is generated code or nothing.
Functions are compiled on first sight of a key and cached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kubesigma.connectors.model import RuleInfo
from kubesigma.connectors.model.logsources import LogSourceProfile
from kubesigma.detections.engine import analysis as A
from kubesigma.detections.engine import codegen, runtime
from kubesigma.detections.engine.fields import MISSING, resolve, split_path
from kubesigma.detections.engine.ir import Node, leaves

# Past this many distinct keys a logsource uses one unspecialised function for new keys.
MAX_BUCKETS = 4096
# Values one level of a bucket remembers; past it the level stops keying on its field.
SPECIALIZED_LIMIT = 4096
# A level keys on all fields left when they are this few (one call instead of one per object).
LEVEL_FIELDS = 3
# Generated functions and levels a logsource keeps for reuse; past it the caches start over.
MAX_FUNCTIONS = 4096

Match = Callable[[dict[str, Any]], list[RuleInfo]]
Selected = list[tuple[RuleInfo, Node]]  # rules (folded for the values known so far) and their IR


def no_match(doc: dict[str, Any]) -> list[RuleInfo]:
    return []


def _on_success(match: Match, succeeded: Callable[[dict[str, Any]], bool]) -> Match:
    """`match`, leaving out the rules about something done when the request did not succeed: one test
    per event that matched anything, where a condition in every rule would cost every rule its reads."""

    def gated(doc: dict[str, Any]) -> list[RuleInfo]:
        matched = match(doc)
        if matched and not succeeded(doc):
            return [info for info in matched if not info.success_only]
        return matched

    return gated


class Route:
    """The rules of one event logsource and their per-key compiled functions."""

    def __init__(self, rules: Sequence[tuple[RuleInfo, Node]], profile: LogSourceProfile):
        self.rules = list(rules)
        self.dispatch = profile.dispatch if rules else ()
        self.buckets: dict[tuple[Any, ...], Any] = {}
        self.specializations = Specializations(profile)
        self._generic: Any = None
        self.necessary = [[A.necessary_values(ir, f) for f in self.dispatch] for _, ir in self.rules]
        if self.dispatch:
            self.match = runtime.dispatcher(self.dispatch, self.buckets, self.bucket)  # type: ignore[method-assign,assignment]
        if any(info.success_only for info, _ in self.rules):
            self.match = _on_success(self.match, profile.succeeded)  # type: ignore[method-assign,assignment]

    def match(self, doc: dict[str, Any]) -> list[RuleInfo]:
        """Replaced per instance by the generated dispatcher when the logsource has dispatch fields."""
        return (self.buckets.get(()) or self.bucket(()))(doc)

    def bucket(self, key: tuple[Any, ...]) -> Match:
        """The function for a dispatch key (values as read), made on first sight."""
        key = runtime.dispatch_key(key)
        fn = self.buckets.get(key)
        if fn is not None:  # a value read in another form than its key's (a list, a number)
            return fn
        if len(self.buckets) >= MAX_BUCKETS:
            if self._generic is None:
                self._generic = codegen.build(self.rules, self.specializations.profile)
            return self._generic
        known = {f: v for f, v in zip(self.dispatch, key, strict=True) if v is not runtime.UNKNOWN}
        lowered = [v.lower() if isinstance(v, str) else v for v in key]
        selected: Selected = []
        for (info, ir), needs in zip(self.rules, self.necessary, strict=True):
            ok = True
            for need, v in zip(needs, lowered, strict=True):
                if need is not None and v is not runtime.UNKNOWN and (v is MISSING or v not in need):
                    ok = False
                    break
            if ok:
                folded = A.fold(ir, known)
                if folded is not False:
                    selected.append((info, folded))
        fn = self.specializations.function_for(selected, frozenset(known))
        self.buckets[key] = fn
        return fn


class Specializations:
    """The functions one logsource's rules specialize into, shared by its buckets and levels: per set
    of folded rules, the next `Level` or their generated code (one per distinct code)."""

    def __init__(self, profile: LogSourceProfile):
        self.profile = profile
        self._by_source: dict[tuple[str, tuple[str, ...]], Match] = {}
        self._by_shape: dict[tuple[Any, ...], Match] = {}
        self._levels: dict[tuple[Any, ...], Match] = {}

    def function_for(self, selected: Selected, known: frozenset[str]) -> Match:
        """The function for these (folded) rules: keyed next on the first low-cardinality field
        they read whose value is not known yet (a `Level`), else their generated code."""
        if not selected:
            return no_match
        names = self.specialize_fields([ir for _, ir in selected]) - known
        if not names:
            return self.compiled(selected)
        # Who is acting (user, groups, impersonation, address, agent) in one level: these fields
        # vary together (a node, a controller), so their combinations stay few. Then the first
        # field by rank with the others under the same object; all at once when few are left.
        identity = names & self.profile.identity
        if identity:
            chosen: frozenset[str] | set[str] = identity
        elif len(names) <= LEVEL_FIELDS:
            chosen = names
        else:
            root = min(names, key=self.rank).split(".", 1)[0]
            chosen = {n for n in names if n.split(".", 1)[0] == root}
        paths = tuple(sorted(chosen, key=self.rank))
        signature = (paths, known, tuple((id(info), A.shape(ir)) for info, ir in selected))
        fn = self._levels.get(signature)
        if fn is None:
            if len(self._levels) >= MAX_FUNCTIONS:
                self._levels.clear()
            fn = self._levels[signature] = Level(self, selected, paths, known).match
        return fn

    def compiled(self, selected: Selected) -> Match:
        """The generated function over these (folded) rules; one per distinct code."""
        if not selected:
            return no_match
        signature = tuple((id(info), A.shape(ir)) for info, ir in selected)
        fn = self._by_shape.get(signature)
        if fn is None:
            source, namespace = codegen.generate(selected, self.profile)
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

    def specialize_fields(self, irs: Sequence[Node]) -> frozenset[str]:
        """The fields these rules read that a bucket specializes on (low-cardinality or bounded
        per identity)."""
        names: set[str] = set()
        for ir in irs:
            names |= A.field_names(ir)
        return frozenset(names & self.profile.specialize_on)

    def rank(self, path: str) -> tuple[int, str]:
        """Order in which a bucket keys on its fields: identities first (they decide most rules)."""
        first = self.profile.specialize_first
        try:
            return (first.index(path), path)
        except ValueError:
            return (len(first), path)


class Level:
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
        specializations: Specializations,
        selected: Selected,
        paths: tuple[str, ...],
        known: frozenset[str],
    ):
        self.specializations = specializations
        self.selected = selected
        self.paths = paths
        self.parts = [split_path(p) for p in paths]
        self.known = known | set(paths)
        self.table: dict[Any, Any] = {}
        self.fallback: Any = None
        numeric = frozenset(
            leaf.field
            for _, ir in selected
            for leaf in leaves(ir)
            if leaf.field in paths and "n" in leaf.needs
        )
        self.match = runtime.level_function(paths, self.table, self.specialize, numeric)

    def specialize(self, key: Any, doc: dict[str, Any]) -> Match:
        """The function for a key (values as read), made on first sight."""
        if self.fallback is not None:
            return self.fallback
        key = runtime.canonical_key(key, len(self.paths))
        fn = self.table.get(key)
        if fn is not None:  # a value read in another form than its key's (a number, a list with one)
            return fn
        values = (key,) if len(self.paths) == 1 else key
        # A value that cannot key a table (an object) is UNKNOWN: its field is not folded.
        known = {
            path: resolve(doc, parts)
            for path, parts, v in zip(self.paths, self.parts, values, strict=True)
            if v is not runtime.UNKNOWN
        }
        residual: Selected = []
        for info, ir in self.selected:
            folded = A.fold(ir, known)
            if folded is not False:
                residual.append((info, folded))
        fn = self.specializations.function_for(residual, self.known)
        if len(self.table) >= SPECIALIZED_LIMIT:
            self.table.clear()
            self.fallback = self.specializations.function_for(self.selected, self.known)
        else:
            self.table[key] = fn
        return fn
