"""Alert documents are built as dicts on the hot path; the pydantic `Alert` model stays their schema.
Both must give the same document for every kind of record, rule and alert."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from kubesigma.connectors.formats import DecodeContext, decode_record
from kubesigma.connectors.model import (
    AWS_CLOUDTRAIL,
    GCP_AUDIT,
    KUBERNETES_AUDIT,
    AuditEvent,
    RawRecord,
    RuleInfo,
    Source,
)
from kubesigma.connectors.model.alert import Suppression, alert_document, build_alert, event_document
from kubesigma.connectors.simulated_cluster import generate

RULES = (
    RuleInfo("r-plain", "Plain", "low", KUBERNETES_AUDIT),
    RuleInfo(
        "r-tagged",
        "Tagged",
        "critical",
        KUBERNETES_AUDIT,
        description="with ATT&CK tags and a reference",
        tags=("attack.t1609", "attack.execution", "attack.t1552.007", "cve.2021-1234"),
        references=("https://example.org/a", "https://example.org/b"),
    ),
    RuleInfo("r-tactic", "Tactic only", "high", KUBERNETES_AUDIT, tags=("attack.persistence",)),
    RuleInfo("r-gcp", "On the LogEntry", "medium", GCP_AUDIT),
    RuleInfo("r-aws", "On the CloudTrail record", "medium", AWS_CLOUDTRAIL),
)
FOLDED = Suppression(count=3, first_seen="a", last_seen="b", alert_ids=["x", "y"], alert_ids_total=3)


def _events(datasets: Path) -> list[AuditEvent]:
    lines = [
        (path.name, line)
        for path in sorted((datasets / "format-samples").glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]
    lines += [("demo.jsonl", orjson.dumps(doc)) for doc in generate(11, 300, attack_ratio=0.2)]
    context = DecodeContext(cluster="test-cluster")
    return [
        event
        for n, (name, line) in enumerate(lines, 1)
        for event in decode_record(RawRecord(line, Source(name, line=n)), context)
        if type(event) is AuditEvent
    ]


@pytest.mark.parametrize("soft_limit", [1 << 20, 400])
def test_alert_documents_are_what_the_alert_model_dumps(datasets: Path, soft_limit: int) -> None:
    events = _events(datasets)
    assert len(events) > 300 and any(e.cloud for e in events)
    compared = 0
    for event in events:
        for rule in RULES:
            for extra in (
                {},
                {"correlation": {"group": ["alice"], "count": 2, "none": None}},
                {"suppression": FOLDED},
            ):
                args = {"alert_id": "a1", "soft_limit": soft_limit, **extra}
                expected = build_alert(rule, event, **args).to_json_dict()  # type: ignore[arg-type]
                document = alert_document(rule, event, **args)  # type: ignore[arg-type]
                assert document == expected
                assert orjson.dumps(document) == orjson.dumps(expected)  # key order too
                compared += 1
    assert compared == len(events) * len(RULES) * 3


def test_a_large_record_matched_by_several_rules_leaves_redacted_in_every_document() -> None:
    # record 227916's shape: a 600 KB record (a 300,000-character command) carrying a credential;
    # its alerts and events-index document share one redacted copy, made once
    doc = next(iter(generate(3, 1)))
    doc["requestObject"] = {
        "kind": "Secret",
        "data": {"password": "S3CRET-PLANTED"},
        "spec": {"containers": [{"command": ['"' * 300_000]}]},
    }
    line = orjson.dumps(doc)
    (event,) = decode_record(RawRecord(line, Source("big.jsonl", line=1)), DecodeContext(cluster="c"))
    assert type(event) is AuditEvent
    documents = [
        alert_document(rule, event, alert_id=f"a{n}", soft_limit=1 << 20) for n, rule in enumerate(RULES[:3])
    ]
    documents.append(event_document(event))
    for document in documents:
        text = orjson.dumps(document)
        assert b"S3CRET-PLANTED" not in text
        assert b'\\"' * 1000 in text  # the command kept: the record is under the soft limit
    # the same record again, changed in a copy: the copy is redacted on its own
    other = dict(event.document, requestObject={"kind": "Secret", "data": {"token": "OTHER-PLANTED"}})
    changed = dataclasses.replace(event, views=((event.logsource, other),))
    text = orjson.dumps(event_document(changed))
    assert b"OTHER-PLANTED" not in text and b'"token"' in text
    assert b'\\"' * 1000 not in text  # not the first record's copy
