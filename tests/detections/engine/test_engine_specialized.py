"""The speed machinery gives the plain answer: inlined field resolvers resolve as `resolve` does, and
buckets specialized on low-cardinality values (user, groups, source address ...) match as the rule
says for values of every JSON type, also once their table of remembered values starts over."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.connectors.model.logsources import KUBERNETES
from kubesigma.detections.engine import codegen, routing
from kubesigma.detections.engine import fields as F
from kubesigma.detections.engine.runtime import joined_lower, lowered_values
from support.sigma_rules import rule_doc, ruleset

# Keys that make dotted paths interesting: plain parts, joins of them, and unrelated ones.
KEYS = st.sampled_from(["a", "b", "c", "a.b", "b.c", "a.b.c", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["s", "A.b", ""]))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
PATHS = [
    ("a",),
    ("a", "b"),
    ("a", "b", "c"),
    ("b", "c"),
    ("a", "x", "b", "c"),
    ("a", "b", "x"),
    ("x", "a", "b"),
    ("a", "c", "x", "b"),  # with ("a", "x", "b", "c"): two missing keys of `a` share one dotted-key test
]


def reference_resolve(doc: Any, parts: tuple[str, ...]) -> Any:
    """The documented semantics, walked directly: plain key first, then dotted keys longest first;
    any element of a list; a tuple of values once a list was traversed (nested lists flattened)."""
    found: list[Any] = []
    traversed = [False]

    def walk(node: Any, i: int) -> None:
        if node.__class__ is list:
            traversed[0] = True
            for item in node:
                walk(item, i)
        elif i == len(parts):
            found.append(node)
        elif node.__class__ is dict:
            for j in [i + 1, *range(len(parts), i + 1, -1)]:
                key = ".".join(parts[i:j])
                if key in node:
                    walk(node[key], j)
                    return

    walk(doc, 0)
    if traversed[0]:
        return tuple(found)
    return found[0] if found else F.MISSING


def _compiled(name: str, paths: list[tuple[str, ...]]) -> Any:
    """A function resolving the paths through `inline_source`, returning their values."""
    lines, bindings = F.inline_source(paths, [f"v{i}" for i in range(len(paths))], "K")
    namespace: dict[str, Any] = {"MISSING": F.MISSING, "_LV": F.list_values, "_NODOTS": F.no_dotted_keys}
    namespace.update(bindings)
    values = ", ".join(f"v{i}" for i in range(len(paths)))
    exec(f"def {name}(doc):\n" + "\n".join(lines) + f"\n    return ({values},)\n", namespace)
    return namespace[name]


def _compiled_resolvers() -> dict[str, Any]:
    out = {f"R{i}": _compiled(f"R{i}", [parts]) for i, parts in enumerate(PATHS)}
    out["together"] = _compiled("together", PATHS)
    return out


RESOLVERS = _compiled_resolvers()


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(KEYS, JSON, max_size=5))
def test_resolve_follows_the_documented_path_semantics(doc):
    for parts in PATHS:
        got, expected = F.resolve(doc, parts), reference_resolve(doc, parts)
        assert got == expected and type(got) is type(expected)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(KEYS, JSON, max_size=5))
def test_inlined_resolvers_resolve_as_resolve(doc):
    expected = tuple(F.resolve(doc, parts) for parts in PATHS)
    single = tuple(RESOLVERS[f"R{i}"](doc)[0] for i in range(len(PATHS)))
    together = RESOLVERS["together"](doc)
    for got in (single, together):
        assert got == expected
        assert [type(v) for v in got] == [type(v) for v in expected]


def test_specialized_bucket_keys_numbers_booleans_and_text_apart(tmp_path):
    # 1, 1.0 and True hash alike: a table keyed on the raw values would reuse one answer for all.
    rs = ruleset(tmp_path, rule_doc({"sel": {"verb": "get", "user.username": 1}, "condition": "sel"}))
    values = [1, True, 1.0, "1", None, [1], [True], [{"n": 1}], 2]
    hits = [
        bool(rs.match_document(KUBERNETES_AUDIT, {"verb": "get", "user": {"username": v}})) for v in values
    ]
    assert hits == [True, False, True, True, False, True, False, False, False]


# Values in every form a key field can take: their canonical key, or not (numbers, lists holding
# them, objects), so a table filled in any order is looked up with raw and canonical forms alike.
FORMS = st.sampled_from(
    [
        1,
        True,
        1.0,
        "1",
        None,
        "get",
        "system:masters",
        "alice",
        [1],
        [True],
        ["1"],
        ["get"],
        ["system:masters", "x"],
        ["alice", 1],
        [{"n": 1}],
        [["1"]],
        {"n": 1},
        "10.1.2.3",
        ["203.0.113.7"],
    ]
)
ABSENT = object()


def _alias(value: Any) -> Any:
    if value is True:
        return 1.0
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 1:
        return True
    if isinstance(value, list):
        return [_alias(v) for v in value]
    return value


KEYED_RULES = [
    {"sel": {"verb": "get", "user.username": 1}, "condition": "sel"},
    {"sel": {"verb": ["get", "1"], "user.groups": "system:masters"}, "condition": "sel"},
    {
        "sel": {"user.username": ["alice", "1"]},
        "net": {"sourceIPs|cidr": "10.0.0.0/8"},
        "condition": "sel and not net",
    },
]


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(*(st.one_of(st.just(ABSENT), FORMS) for _ in range(4))), min_size=1, max_size=40
    )
)
def test_specialized_tables_answer_as_the_plain_rules_in_any_order(tmp_path_factory, events):
    # Dispatch buckets and levels remember functions under canonical keys and look up the values
    # as read; whatever order the forms arrive in, the answer is the unspecialized one.
    rs = ruleset(tmp_path_factory.mktemp("keyed"), *(rule_doc(d) for d in KEYED_RULES))
    plain = codegen.build([(c.info, c.ir) for c in rs._compiled], KUBERNETES)
    # Each event again with its numbers in another form that hashes and compares alike (1, True,
    # 1.0): a table that stored values as read would answer these from the first one's entry.
    for verb, username, groups, ips in [*events, *(tuple(map(_alias, e)) for e in events)]:
        doc: dict[str, Any] = {}
        if verb is not ABSENT:
            doc["verb"] = verb
        user = {k: v for k, v in (("username", username), ("groups", groups)) if v is not ABSENT}
        if user:
            doc["user"] = user
        if ips is not ABSENT:
            doc["sourceIPs"] = ips
        got = sorted(i.id for i in rs.match_document(KUBERNETES_AUDIT, doc))
        assert got == sorted(i.id for i in plain(doc)), doc  # memoized rules come first: order may differ


def test_specialized_bucket_evaluates_what_the_values_leave(tmp_path):
    det = {
        "sel": {"verb": "get", "user.username|startswith": "system:node:"},
        "public": {"sourceIPs|cidr": ["10.0.0.0/8"]},
        "condition": "sel and not public",
    }
    rs = ruleset(tmp_path, rule_doc(det))
    node = {"verb": "get", "user": {"username": "system:node:n1"}}
    assert not rs.match_document(KUBERNETES_AUDIT, {**node, "sourceIPs": ["10.1.2.3"]})
    assert rs.match_document(KUBERNETES_AUDIT, {**node, "sourceIPs": ["203.0.113.7"]})
    assert rs.match_document(KUBERNETES_AUDIT, {**node})
    assert not rs.match_document(
        KUBERNETES_AUDIT, {**node, "user": {"username": "alice"}, "sourceIPs": ["203.0.113.7"]}
    )


def test_specialized_bucket_past_its_limit_keeps_matching(tmp_path, monkeypatch):
    monkeypatch.setattr(routing, "SPECIALIZED_LIMIT", 3)
    rs = ruleset(
        tmp_path, rule_doc({"sel": {"verb": "get", "user.username|endswith": "7"}, "condition": "sel"})
    )
    hits = [
        bool(rs.match_document(KUBERNETES_AUDIT, {"verb": "get", "user": {"username": f"u{i % 20}"}}))
        for i in range(60)
    ]
    assert hits == [str(i % 20).endswith("7") for i in range(60)]


def test_keyword_wildcards_match_within_one_string_only(tmp_path):
    # Keywords with inner wildcards are searched once over all strings joined by NUL: a wildcard
    # must not bridge two strings.
    rs = ruleset(tmp_path, rule_doc({"kw": ["*BEGIN*PRIVATE KEY*", "x?y"], "condition": "kw"}))
    assert rs.match_document(KUBERNETES_AUDIT, {"a": {"b": ["-----begin rsa private key-----"]}})
    assert rs.match_document(KUBERNETES_AUDIT, {"note": "x-y"})
    assert not rs.match_document(KUBERNETES_AUDIT, {"a": "BEGIN", "b": "PRIVATE KEY"})
    assert not rs.match_document(KUBERNETES_AUDIT, {"a": "x", "b": "y"})


def test_rules_needing_spec_fields_skip_objects_without_them(tmp_path):
    image = {
        "sel": {"verb": "create", "requestObject.spec.containers.image|contains": "evil"},
        "condition": "sel",
    }
    filtered = {
        "sel": {"verb": "create", "requestObject.spec.hostPID": True},
        "filter": {"requestObject.metadata.name": "ok"},
        "condition": "sel and not filter",
    }
    rs = ruleset(tmp_path, rule_doc(image, title="image"), rule_doc(filtered, title="pid"))

    def titles(request_object: dict[str, Any]) -> set[str]:
        doc = {"verb": "create", "requestObject": request_object}
        return {r.title for r in rs.match_document(KUBERNETES_AUDIT, doc)}

    assert titles({"kind": "Binding", "target": {"name": "n1"}}) == set()
    assert titles({"spec": {"containers": [{"image": "evil:1"}]}}) == {"image"}
    assert titles({"spec.containers": [{"image": "evil:2"}]}) == {"image"}  # a dotted key stands in
    assert titles({"spec": {"hostPID": True}, "metadata": {"name": "other"}}) == {"pid"}
    assert titles({"spec": {"hostPID": True}, "metadata": {"name": "ok"}}) == set()


def test_null_tests_on_spec_fields_match_objects_without_them(tmp_path):
    unset = {"sel": {"verb": "create", "requestObject.spec.hostNetwork": None}, "condition": "sel"}
    rs = ruleset(tmp_path, rule_doc(unset))
    assert rs.match_document(KUBERNETES_AUDIT, {"verb": "create", "requestObject": {"kind": "Binding"}})
    assert not rs.match_document(
        KUBERNETES_AUDIT, {"verb": "create", "requestObject": {"spec": {"hostNetwork": 0}}}
    )


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.text(), st.integers(), st.booleans()), max_size=5))
def test_list_values_lowered_together_equal_lowered_one_by_one(values):
    # `contains` on a list field searches its values lowered and joined by NUL in one string
    assert joined_lower(tuple(values)) == "\x00".join(lowered_values(tuple(values)))


def test_specialized_tables_answer_repeats_without_specializing_again(tmp_path, monkeypatch):
    # A level keyed on a numerically compared field (status codes) types its values inline; the
    # table must then hold them as they are looked up, or every event pays a specialization call.
    calls = []
    original = routing.Level.specialize

    def counting(self, key, doc):
        calls.append(key)
        return original(self, key, doc)

    monkeypatch.setattr(routing.Level, "specialize", counting)
    # A rule about refused requests (it names the outcome: not limited to successful ones).
    det = {
        "sel": {"verb": "get", "annotations.authorization.k8s.io/decision": "forbid"},
        "code": {"responseStatus.code": 403},
        "refused": {"event.outcome": "failure"},
        "condition": "sel and code and refused",
    }
    rs = ruleset(tmp_path, rule_doc(det))
    docs = [
        {"verb": "get", "annotations": {"authorization.k8s.io/decision": d}, "responseStatus": {"code": c}}
        for d in ("allow", "forbid")
        for c in (200, 403, 403.0, True, "403", None)
    ]
    first = [bool(rs.match_document(KUBERNETES_AUDIT, d)) for d in docs]
    assert first == [
        d == "forbid" and c in (403, 403.0, "403") and c is not True
        for d in ("allow", "forbid")
        for c in (200, 403, 403.0, True, "403", None)
    ]
    assert calls
    calls.clear()
    again = [bool(rs.match_document(KUBERNETES_AUDIT, d)) for d in docs]
    assert again == first
    assert calls == []


def test_zero_and_nan_floats_are_not_folded_together(tmp_path):
    # -0.0 keys and compares like 0.0 but reads "-0.0"; NaN equals nothing: neither may reuse a
    # function folded for another value.
    rs = ruleset(
        tmp_path,
        rule_doc({"sel": {"verb": "get", "responseStatus.code|startswith": ["-", "n"]}, "condition": "sel"}),
    )
    plain = codegen.build([(c.info, c.ir) for c in rs._compiled], KUBERNETES)
    for code in (0.0, -0.0, 0.0, float("nan"), float("nan"), -0.0, 0):
        doc = {"verb": "get", "responseStatus": {"code": code}}
        assert bool(rs.match_document(KUBERNETES_AUDIT, doc)) == bool(plain(doc)), code
