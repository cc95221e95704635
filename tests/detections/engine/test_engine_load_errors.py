"""A bad rule is refused at load with its file and line; check() reports without raising."""

from __future__ import annotations

import pytest

from kubesigma.detections.engine import RuleLoadError, RuleSet
from support.sigma_rules import rule_doc, write_rules

GOOD = rule_doc({"sel": {"verb": "create"}, "condition": "sel"}, title="good rule")

BAD_MODIFIER = """title: bad modifier
id: 0d4cbd20-0000-4000-8000-00000000bad1
logsource:
    product: kubernetes
    service: audit
detection:
    sel:
        verb|containz: create
    condition: sel
level: low
"""

BAD_YAML = """title: broken
detection:
    sel: [a, b
    condition: sel
"""

UNDEFINED_SELECTION = """title: undefined selection
id: 0d4cbd20-0000-4000-8000-00000000bad2
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: create
    condition: sel and other
level: low
"""

BAD_REGEX = """title: bad regex
id: 0d4cbd20-0000-4000-8000-00000000bad3
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        requestURI|re: '(?<=x)a'
    condition: sel
level: low
"""

MISSING_LIST = """title: missing list
id: 0d4cbd20-0000-4000-8000-00000000bad4
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        user.username|expand: '%no_such_list%'
    condition: sel
level: low
"""


def _report(tmp_path, text):
    folder = write_rules(tmp_path / "rules", GOOD, text)
    reports = RuleSet.check([folder])
    bad = [r for r in reports if not r.ok]
    assert len(bad) == 1, reports
    assert [r.title for r in reports if r.ok] == ["good rule"]
    return bad[0]


def test_unknown_modifier_is_refused_with_its_line(tmp_path):
    report = _report(tmp_path, BAD_MODIFIER)
    assert "containz" in report.error
    assert report.line == 8
    assert report.path.endswith(".yml")


def test_invalid_yaml_is_refused_with_its_line(tmp_path):
    report = _report(tmp_path, BAD_YAML)
    assert "invalid YAML" in report.error
    assert report.line in (3, 4)


def test_condition_naming_an_undefined_selection_is_refused(tmp_path):
    report = _report(tmp_path, UNDEFINED_SELECTION)
    assert "other" in report.error


def test_regex_re2_cannot_run_is_refused_not_misevaluated(tmp_path):
    report = _report(tmp_path, BAD_REGEX)
    assert "RE2" in report.error


def test_placeholder_without_a_list_is_refused(tmp_path):
    report = _report(tmp_path, MISSING_LIST)
    assert "no_such_list" in report.error


def test_load_raises_with_a_readable_report(tmp_path):
    folder = write_rules(tmp_path / "rules", GOOD, BAD_MODIFIER)
    with pytest.raises(RuleLoadError) as info:
        RuleSet.load([folder])
    text = str(info.value)
    assert "bad modifier" in text and ":8" in text and "containz" in text
    assert len(info.value.reports) == 2


def test_duplicate_rule_ids_are_refused(tmp_path):
    folder = write_rules(tmp_path / "rules", GOOD, GOOD)
    assert [r.ok for r in RuleSet.check([folder])].count(False) == 1


def test_missing_path_is_reported(tmp_path):
    reports = RuleSet.check([tmp_path / "nowhere"])
    assert not reports[0].ok and "no such file" in reports[0].error
