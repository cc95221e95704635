"""The SQLite oracle's boolean policy (support/sqlite_oracle.py) is the engine's: how a Sigma boolean, a
Sigma `'true'` string and a Sigma number compare with JSON booleans and with `true`/`false` strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesigma.detections.mapping import evaluation_pipeline
from support.sigma_rules import rule_doc, write_rules
from support.sqlite_oracle import EngineVsSQLite, flatten

FIELD = "requestObject.spec.hostPID"
# What each rule's value is, as Sigma reads the YAML: boolean, string, number.
RULES = {"sigma true": True, "sigma false": False, "sigma 'true'": "true", "sigma 1": 1}
VALUES: dict[str, Any] = {
    "json true": True,
    "json false": False,
    "string true": "true",
    "string True": "True",
    "string TRUE": "TRUE",
    "string false": "false",
    "null": None,
}
# The policy: which event values each rule matches (a missing field matches none).
MATCHES = {
    "sigma true": {"json true", "string true", "string True", "string TRUE"},
    "sigma false": {"json false", "string false"},
    "sigma 'true'": {"json true", "string true", "string True", "string TRUE"},
    "sigma 1": set(),
}


def _event(value: Any) -> dict[str, Any]:
    return {"kind": "Event", "verb": "create", "requestObject": {"spec": {"hostPID": value}}}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[EngineVsSQLite, dict[str, str]]:
    folder = tmp_path_factory.mktemp("rules")
    docs = [
        rule_doc({"sel": {FIELD: value}, "condition": "sel"}, title=title) for title, value in RULES.items()
    ]
    write_rules(folder, *docs)
    return EngineVsSQLite([folder], evaluation_pipeline), {d["id"]: d["title"] for d in docs}


def _matched(pairs: set[tuple[str, int]], titles: dict[str, str], names: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {title: set() for title in RULES}
    for rule_id, i in pairs:
        out[titles[rule_id]].add(names[i])
    return out


def test_json_booleans_are_stored_as_the_words_true_and_false() -> None:
    assert flatten(_event(True)) == {"kind": "Event", "verb": "create", FIELD: "true"}
    assert flatten(_event(False))[FIELD] == "false"


def test_engine_and_oracle_both_follow_the_boolean_policy(
    both: tuple[EngineVsSQLite, dict[str, str]],
) -> None:
    comparison, titles = both
    names = [*VALUES, "missing"]
    docs = [*(_event(v) for v in VALUES.values()), {"kind": "Event", "verb": "create"}]
    mine, theirs, compared = comparison.compare(docs)
    assert compared == len(RULES) * len(docs)
    assert _matched(mine, titles, names) == MATCHES
    assert _matched(theirs, titles, names) == MATCHES


def test_the_known_difference_a_json_one_is_true_to_sqlite_only(
    both: tuple[EngineVsSQLite, dict[str, str]],
) -> None:
    """The backend writes `field='true' OR field=1`: the number 1 and the string "1" pass its second half.
    The compared events keep clear of them."""
    comparison, titles = both
    names = ["json 1", "string 1"]
    mine, theirs, _ = comparison.compare([_event(1), _event("1")])
    assert _matched(mine, titles, names)["sigma true"] == set()
    assert _matched(theirs, titles, names)["sigma true"] == {"json 1", "string 1"}


def test_rules_are_read_as_written(tmp_path: Path) -> None:
    """Guard: the YAML values above reach Sigma as boolean, string and number."""
    from sigma.collection import SigmaCollection
    from sigma.types import SigmaBool, SigmaNumber, SigmaString

    docs = [
        rule_doc({"sel": {FIELD: value}, "condition": "sel"}, title=title) for title, value in RULES.items()
    ]
    rules = SigmaCollection.load_ruleset([write_rules(tmp_path, *docs)]).rules
    kinds = {r.title: type(r.detection.detections["sel"].detection_items[0].value[0]) for r in rules}
    assert kinds == {
        "sigma true": SigmaBool,
        "sigma false": SigmaBool,
        "sigma 'true'": SigmaString,
        "sigma 1": SigmaNumber,
    }
