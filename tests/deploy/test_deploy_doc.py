"""docs/deploy.md points at what the repository holds: every relative link and every `terraform/...`,
`.ci/...` path it names exists, every in-page link has its heading, and the Flex Template parameters it
passes are ones metadata.json declares."""

from __future__ import annotations

import json
import re

from support.paths import REPO

DOC = REPO / "docs" / "deploy.md"


def text() -> str:
    return DOC.read_text(encoding="utf-8")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_named_paths_exist() -> None:
    links = re.findall(r"\]\((?!https?://|#)([^)#]+)\)", text())
    named = re.findall(r"(?<![\w/.])((?:terraform|\.ci)/[\w./-]*\w)", text())
    assert links and named
    missing = [link for link in links if not (DOC.parent / link).exists()]
    missing += [path for path in named if not (REPO / path).exists()]
    assert missing == []


def test_in_page_links_have_their_heading() -> None:
    headings = {anchor(h) for h in re.findall(r"^#{1,4} (.+)$", text(), re.MULTILINE)}
    targets = set(re.findall(r"\]\(#([^)]+)\)", text()))
    assert "path-1-gke--pubsub--dataflow" in targets
    assert targets - headings == set()


def test_flex_template_parameters_in_the_doc_are_declared() -> None:
    declared = {
        p["name"] for p in json.loads((REPO / "terraform/dataflow/metadata.json").read_text())["parameters"]
    }
    passed = re.findall(r"(\w+)=\"", "".join(re.findall(r"job_parameters=\{([^}]*)\}", text())))
    assert passed and set(passed) <= declared
