"""Property tests: each Sigma modifier agrees with a plain-Python statement of its meaning."""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubesigma.detections.engine import RuleLoadError
from support.sigma_rules import compile_rule

# Sigma strings without wildcard/escape characters, so the rule value is the literal.
TEXT = st.text(alphabet=st.characters(blacklist_characters="*?\\", blacklist_categories=("Cs",)), max_size=12)
ASCII = st.text(alphabet="abcXYZ019-/. _:", max_size=12)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one(detection_item: dict, doc: dict) -> bool:
    return compile_rule({"sel": detection_item, "condition": "sel"})(doc)


@SETTINGS
@given(needle=ASCII.filter(bool), hay=ASCII)
def test_contains_is_case_insensitive_substring(needle, hay):
    assert one({"f|contains": needle}, {"f": hay}) == (needle.lower() in hay.lower())


@SETTINGS
@given(prefix=ASCII.filter(bool), hay=ASCII)
def test_startswith_is_case_insensitive_prefix(prefix, hay):
    assert one({"f|startswith": prefix}, {"f": hay}) == hay.lower().startswith(prefix.lower())


@SETTINGS
@given(suffix=ASCII.filter(bool), hay=ASCII)
def test_endswith_is_case_insensitive_suffix(suffix, hay):
    assert one({"f|endswith": suffix}, {"f": hay}) == hay.lower().endswith(suffix.lower())


@SETTINGS
@given(needles=st.lists(ASCII.filter(bool), min_size=1, max_size=3), hay=ASCII)
def test_all_requires_every_value(needles, hay):
    assert one({"f|contains|all": needles}, {"f": hay}) == all(n.lower() in hay.lower() for n in needles)


@SETTINGS
@given(dash=st.sampled_from(["-", "/", "\u2013", "\u2014", "\u2015"]), before=ASCII, after=ASCII)
def test_windash_accepts_every_dash_form(dash, before, after):
    assert one({"f|windash|contains": "-exec"}, {"f": f"{before}{dash}exec{after}"})


@SETTINGS
@given(value=TEXT.filter(bool))
def test_base64_matches_the_encoded_value(value):
    encoded = base64.b64encode(value.encode()).decode()
    assert one({"f|base64": value}, {"f": encoded})
    assert not one({"f|base64": value}, {"f": value + "x"})


@SETTINGS
@given(value=ASCII.filter(lambda s: len(s) >= 3), prefix=ASCII, suffix=ASCII)
def test_base64offset_finds_the_value_at_any_offset(value, prefix, suffix):
    encoded = base64.b64encode((prefix + value + suffix).encode()).decode()
    assert one({"f|base64offset|contains": value}, {"f": encoded})


@SETTINGS
@given(
    value=ASCII.filter(lambda s: len(s) >= 3),
    prefix=ASCII,
    enc=st.sampled_from(["utf16le", "wide", "utf16be", "utf16"]),
)
def test_utf16_encodings_combine_with_base64offset(value, prefix, enc):
    codec = {"utf16le": "utf-16-le", "wide": "utf-16-le", "utf16be": "utf-16-be"}.get(enc)
    raw = (prefix.encode(codec) + value.encode(codec)) if codec else ("\ufeff" + value).encode("utf-16-le")
    encoded = base64.b64encode(raw).decode()
    assert one({f"f|{enc}|base64offset|contains": value}, {"f": encoded})


PATTERNS = st.sampled_from(["^ab", "b$", "a.c", "^a.*c$", "A+", "x|y", "^c", "a\\nc"])
FLAGS = st.sampled_from(["", "i", "m", "s", "im", "is", "ms", "ims"])


@SETTINGS
@given(pattern=PATTERNS, flags=FLAGS, hay=st.text(alphabet="abcAxy\n", max_size=8))
@example(pattern="b$", flags="", hay="b\n")  # `$` before a final newline: PCRE and Python, not RE2
@example(pattern="^a.*c$", flags="s", hay="abc\n")
def test_re_with_flags_matches_like_python_re(pattern, flags, hay):
    modifiers = "re" + "".join(f"|{f}" for f in flags)
    pyflags = 0
    for f in flags:
        pyflags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}[f]
    assert one({f"f|{modifiers}": pattern}, {"f": hay}) == (re.search(pattern, hay, pyflags) is not None)


@SETTINGS
@given(addr=st.ip_addresses(), prefix=st.integers(min_value=0, max_value=128))
def test_cidr_matches_addresses_inside_the_network(addr, prefix):
    bits = 32 if addr.version == 4 else 128
    net = ipaddress.ip_network(f"{addr}/{min(prefix, bits)}", strict=False)
    other = ipaddress.ip_address(int(net.network_address) ^ (1 << (bits - 1)) if net.prefixlen else 0)
    assert one({"sourceIPs|cidr": str(net)}, {"sourceIPs": [str(addr)]})
    if net.prefixlen:
        assert one({"sourceIPs|cidr": str(net)}, {"sourceIPs": [str(other)]}) == (other in net)


@SETTINGS
@given(present=st.sampled_from(["value", None, "absent"]), want=st.booleans())
def test_exists_is_presence_of_a_non_null_value(present, want):
    doc = {} if present == "absent" else {"f": present}
    assert one({"f|exists": want}, doc) == ((present == "value") == want)


@SETTINGS
@given(value=ASCII, other=ASCII)
def test_neq_is_negated_equality(value, other):
    assert one({"f|neq": value}, {"f": other}) == (value.lower() != other.lower())


@SETTINGS
@given(
    limit=st.integers(-50, 50),
    value=st.one_of(st.integers(-60, 60), st.floats(-60, 60, allow_nan=False)),
    op=st.sampled_from(["lt", "lte", "gt", "gte"]),
    as_text=st.booleans(),
)
def test_numeric_comparisons(limit, value, op, as_text):
    expected = {"lt": value < limit, "lte": value <= limit, "gt": value > limit, "gte": value >= limit}[op]
    assert one({f"n|{op}": limit}, {"n": str(value) if as_text else value}) == expected


@SETTINGS
@given(a=ASCII, b=ASCII)
def test_fieldref_compares_two_fields(a, b):
    assert one(
        {"user.username|fieldref": "objectRef.name"}, {"user": {"username": a}, "objectRef": {"name": b}}
    ) == (a.lower() == b.lower())


@SETTINGS
@given(
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    part=st.sampled_from(["minute", "hour", "day", "week", "month", "year"]),
)
def test_time_part_modifiers_read_event_time(moment, part):
    moment = moment.replace(tzinfo=UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    expected = {
        "minute": moment.minute,
        "hour": moment.hour,
        "day": moment.day,
        "week": moment.isocalendar()[1],
        "month": moment.month,
        "year": moment.year,
    }[part]
    assert one({f"stageTimestamp|{part}": expected}, {"stageTimestamp": stamp})
    assert not one({f"stageTimestamp|{part}": expected + 1}, {"stageTimestamp": stamp})


def test_expand_takes_values_from_a_named_list(tmp_path):
    from kubesigma.detections.config import EngineConfig
    from kubesigma.detections.lists import LISTS_DIR

    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "cluster_admins.txt").write_text("# break-glass accounts\nroot@example.com\nops-*\n")
    config = EngineConfig(list_paths=(LISTS_DIR, lists))
    rule = compile_rule({"sel": {"user.username|expand": "%cluster_admins%"}, "condition": "sel"}, config)
    assert rule({"user": {"username": "ROOT@example.com"}})
    assert rule({"user": {"username": "ops-jane"}})
    assert not rule({"user": {"username": "dev-joe"}})


@pytest.mark.parametrize("pattern", ["a$\\n", "(a$|b)\\n", "a$\\s", "(?s)a$.", "a$[^b]", "(a$)*x"])
def test_re_with_a_dollar_more_pattern_can_follow_is_refused(pattern):
    # PCRE's `$` (no m flag) also matches before a final newline, where a following `\n` can then
    # match it; RE2 cannot say that, so the rule is refused rather than evaluated differently.
    with pytest.raises(RuleLoadError, match="final newline"):
        one({"f|re": pattern}, {"f": "a\n"})


@pytest.mark.parametrize(
    ("pattern", "modifiers"),
    [("a$", "re"), ("(a$|b)", "re"), ("a$$", "re"), ("x|a$", "re"), ("(?m)a$\\nb", "re"), ("a$\\nb", "re|m")],
)
def test_re_with_dollars_only_at_the_end_match_like_python_re(pattern, modifiers):
    flags = re.MULTILINE if modifiers.endswith("|m") else 0
    for hay in ("a", "a\n", "a\nb", "a\nb\n", "ba\n\n", "x"):
        assert one({f"f|{modifiers}": pattern}, {"f": hay}) == (re.search(pattern, hay, flags) is not None), (
            hay
        )
