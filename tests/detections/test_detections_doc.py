"""docs/detections.md is generated from the rules and kept current; it names the framework gaps."""

from __future__ import annotations

from pathlib import Path

from kubesigma.detections import frameworks
from kubesigma.pipeline.commands import rules_doc
from support.paths import REPO

DOC = REPO / "docs" / "detections.md"


def test_detections_doc_is_up_to_date() -> None:
    assert rules_doc.main(["--check"]) == 0, "run: python -m kubesigma.pipeline.commands.rules_doc"


def test_check_fails_when_the_doc_differs(tmp_path: Path) -> None:
    stale = tmp_path / "detections.md"
    stale.write_text("# old\n")
    assert rules_doc.main(["--check", "--out", str(stale)]) == 1


def test_doc_lists_every_rule_with_its_level() -> None:
    text = DOC.read_text(encoding="utf-8")
    for info in rules_doc.load_rules([rules_doc.RULES_DIR]):
        assert f"[{info.title}]" in text and f"| {info.level} |" in text


def test_doc_names_every_threat_matrix_technique_and_owasp_item() -> None:
    text = DOC.read_text(encoding="utf-8")
    for tid, (name, _tactics) in frameworks.MTMK.items():
        assert f"{tid} {name}" in text
    for oid, name in frameworks.OWASP_K8S.items():
        assert f"{oid} {name}" in text
    assert "**gap" in text
