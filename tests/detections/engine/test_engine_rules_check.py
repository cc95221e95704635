"""`kubesigma rules check`: per-rule lines, warnings that do not fail, exit 1 only on refused rules."""

from __future__ import annotations

import io

from kubesigma.pipeline.commands.rules_check import run_check
from kubesigma.pipeline.options import DEFAULT_CORRELATION_RULES
from support.sigma_rules import rule_doc, write_rules


def test_check_passes_with_warnings_on_sigmahq_gcp_rules(datasets):
    out = io.StringIO()
    code = run_check([str(datasets / "sigmahq-rules" / "rules" / "cloud" / "gcp")], None, out)
    text = out.getvalue()
    assert code == 0
    assert "cd3a808c-c7b7-4c50-a2f3-f4cfcd436435" in text and "Google Cloud Kubernetes CronJob" in text
    assert "warning: method name 'io.k8s.api.batch.v*.Job'" in text
    assert "5 loaded, 0 refused" in text


def test_unknown_field_is_a_warning(tmp_path):
    folder = write_rules(tmp_path, rule_doc({"sel": {"objectRef.resourcee": "pods"}, "condition": "sel"}))
    out = io.StringIO()
    assert run_check([str(folder)], None, out) == 0
    assert "warning: field `objectRef.resourcee`" in out.getvalue()


def test_refused_rule_fails_the_check(tmp_path):
    folder = write_rules(tmp_path, rule_doc({"sel": {"verb|nosuch": "x"}, "condition": "sel"}, title="typo"))
    out = io.StringIO()
    assert run_check([str(folder)], None, out) == 1
    assert "REFUSED" in out.getvalue() and "nosuch" in out.getvalue()


def test_bad_config_file_fails_with_its_name(tmp_path):
    cfg = tmp_path / "engine.yml"
    cfg.write_text("disabled: [x]\n")
    out = io.StringIO()
    assert run_check([str(tmp_path)], str(cfg), out) == 1
    assert "engine.yml" in out.getvalue() and "unknown keys" in out.getvalue()


def test_without_paths_it_checks_what_kubesigma_run_loads():
    """The shipped pack and the shipped correlation rules, whose inputs live in both folders."""
    out = io.StringIO()
    assert run_check([], None, out) == 0
    text = out.getvalue()
    assert "loaded (correlation)" in text and "Kubernetes Secret Enumeration By One Identity" in text
    assert ", 0 refused" in text


def test_a_correlation_checked_without_its_input_rule_says_where_to_look():
    out = io.StringIO()
    assert run_check([str(DEFAULT_CORRELATION_RULES)], None, out) == 1
    assert (
        "not found in rule collection (check it together with the file that defines that rule"
        in out.getvalue()
    )
