"""The pack on real third-party records (../shared/datasets/format-samples, read in place): GKE's own
LogEntries and collector output, decoded by the real decoders."""

from __future__ import annotations

from pathlib import Path

import orjson

from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.model import AuditEvent, Source
from support.paths import FORMAT_SAMPLES, SHIPPED_RULES

SAMPLES = FORMAT_SAMPLES


def _fired(name: str) -> list[tuple[str, set[str]]]:
    from kubesigma.detections.engine import RuleSet

    ruleset = RuleSet.load([SHIPPED_RULES])
    out = []
    for n, line in enumerate((SAMPLES / name).read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        for event in decode_value(orjson.loads(line), Source(name, line=n)):
            if isinstance(event, AuditEvent):
                doc = event.views[0][1]
                out.append(
                    (str(doc.get("requestURI", "")), {Path(r.path).stem for r in ruleset.match(event)})
                )
    return out


def test_gke_anonymous_readyz_probe_raises_nothing() -> None:
    hits = [fired for uri, fired in _fired("gke-cloud-audit-logentries.jsonl") if uri == "/readyz"]
    assert hits == [set()]


def test_gke_anonymous_scanner_refusal_raises_only_the_denied_rule() -> None:
    hits = [fired for uri, fired in _fired("gke-cloud-audit-logentries.jsonl") if uri == "/HNAP1"]
    assert hits == [{"anonymous_request_denied"}]


def test_ordinary_gke_and_aks_traffic_raises_nothing_medium_or_above() -> None:
    for name in ("gke-cloud-audit-logentries.jsonl", "aks-diagnostic.jsonl"):
        for uri, fired in _fired(name):
            assert not fired - {"anonymous_request_denied"}, (name, uri, fired)


def test_service_account_from_a_public_address_in_collector_sample_raises_the_public_ip_rule() -> None:
    """The Elastic sample's kube-system service account calls from 67.43.156.1, a public address: the
    very condition of the rule (the sample's addresses were rewritten, but the rule cannot know)."""
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/elastic-agent-cluster-test"
    fired = [f for uri, f in _fired("kubernetes-audit-mixed.jsonl") if uri == lease]
    assert {"system_identity_from_public_ip"} in fired
    assert all(f <= {"system_identity_from_public_ip"} for f in fired)
