"""GKE audit LogEntries (real samples from elastic/integrations) become one event with two views."""

from __future__ import annotations

from collections import Counter

import pytest

from kubesigma.connectors.delivery import as_gke_logentry
from kubesigma.connectors.formats import decode_record, decode_value
from kubesigma.connectors.model import GCP_AUDIT, KUBERNETES_AUDIT, AuditEvent, DeadLetter, Source
from kubesigma.connectors.sources.files import read_file
from support.paths import FORMAT_SAMPLES

GKE_SAMPLES = FORMAT_SAMPLES / "gke-cloud-audit-logentries.jsonl"


def _outcomes(path):
    return [outcome for record in read_file(str(path)) for outcome in decode_record(record)]


def _by_id(path) -> dict[str, AuditEvent]:
    return {o.event_id: o for o in _outcomes(path) if isinstance(o, AuditEvent)}


def test_six_gke_samples_normalize_with_no_dead_letters():
    kinds = Counter(type(o).__name__ for o in _outcomes(GKE_SAMPLES))
    assert kinds == {"AuditEvent": 6}


def test_gke_entry_is_one_event_seen_as_kubernetes_audit_and_gcp_audit():
    event = _by_id(GKE_SAMPLES)["94170ac4-6e82-4345-98ad-3c780222d19d"]
    assert [view[0] for view in event.views] == [KUBERNETES_AUDIT, GCP_AUDIT]
    assert event.views[1][1]["protoPayload"]["methodName"] == "io.k8s.core.v1.nodes.list"


def test_gke_entry_event_id_is_insert_id_and_audit_id_is_operation_id():
    event = _by_id(GKE_SAMPLES)["87efd529-6349-45d2-b905-fc607e6c5d3b"]
    assert event.document["auditID"] == "5555555-6349-45d2-b905-fc607e6c5d3b"


def test_gke_entry_carries_project_location_and_cluster():
    event = _by_id(GKE_SAMPLES)["b10a904a-faa4-4e0d-9ec3-7bc6a180196a"]
    assert (event.cloud.provider, event.cloud.account_id, event.cloud.region) == (
        "gcp",
        "elastic-siem",
        "us-central1",
    )
    assert event.cluster == "analysis-cluster"


def test_every_gke_sample_carries_cloud_and_cluster():
    for event in _by_id(GKE_SAMPLES).values():
        assert (
            event.cloud.provider == "gcp" and event.cloud.account_id and event.cloud.region and event.cluster
        )


def test_gke_method_and_resource_name_become_verb_and_object_ref():
    doc = _by_id(GKE_SAMPLES)["b10a904a-faa4-4e0d-9ec3-7bc6a180196a"].document
    assert doc["verb"] == "list"
    assert doc["objectRef"] == {
        "namespace": "cos-auditd",
        "resource": "ingresses",
        "apiGroup": "extensions",
        "apiVersion": "v1beta1",
    }
    assert doc["requestURI"] == "/apis/extensions/v1beta1/namespaces/cos-auditd/ingresses"


def test_gke_core_group_resource_has_empty_api_group_and_legacy_uri():
    doc = _by_id(GKE_SAMPLES)["94170ac4-6e82-4345-98ad-3c780222d19d"].document
    assert doc["objectRef"]["apiGroup"] == ""
    assert doc["requestURI"] == "/api/v1/nodes"


def test_gke_non_resource_request_has_uri_and_no_object_ref():
    doc = _by_id(GKE_SAMPLES)["e973134d-b4d5-4e2f-92b8-82bba13fdb92"].document
    assert doc["requestURI"] == "/readyz"
    assert "objectRef" not in doc


def test_gke_principal_caller_ip_and_agent_become_user_source_and_user_agent():
    event = _by_id(GKE_SAMPLES)["87efd529-6349-45d2-b905-fc607e6c5d3b"]
    assert event.document["user"] == {"username": "system:serviceaccount:cert-manager:cert-manager-webhook"}
    assert event.document["sourceIPs"] == ["10.11.12.13"]
    assert event.document["userAgent"] == "webhook/v0.0.0 (linux/amd64) kubernetes/$Format"
    assert (event.user_name, event.source_ip) == (
        "system:serviceaccount:cert-manager:cert-manager-webhook",
        "10.11.12.13",
    )


def test_gke_denied_request_reads_as_forbidden():
    doc = _by_id(GKE_SAMPLES)["k8s-nonmatch-0001"].document
    assert doc["responseStatus"]["code"] == 403
    assert doc["responseStatus"]["reason"] == "Forbidden"


def test_gke_ok_status_reads_as_200():
    assert (
        _by_id(GKE_SAMPLES)["87efd529-6349-45d2-b905-fc607e6c5d3b"].document["responseStatus"]["code"] == 200
    )


@pytest.mark.parametrize(("grpc", "http"), [(16, 401), (5, 404), (6, 409), (7, 403)])
def test_gke_grpc_status_maps_to_http(grpc, http):
    entry = next(read_file(str(GKE_SAMPLES))).value
    entry = {**entry, "protoPayload": {**entry["protoPayload"], "status": {"code": grpc, "message": "no"}}}
    (event,) = decode_value(entry, Source("test"))
    assert event.document["responseStatus"]["code"] == http


def test_gke_labels_become_authorization_annotations():
    doc = _by_id(GKE_SAMPLES)["03adfb9f-71a3-4f41-9701-29b5542f4d22"].document
    assert doc["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert doc["annotations"]["authorization.k8s.io/reason"].startswith("RBAC: allowed by ClusterRoleBinding")


def test_gke_request_and_response_become_objects_without_proto_type():
    doc = _by_id(GKE_SAMPLES)["87efd529-6349-45d2-b905-fc607e6c5d3b"].document
    assert doc["requestObject"]["kind"] == "SubjectAccessReview"
    assert "@type" not in doc["requestObject"]
    assert doc["responseObject"]["status"]["allowed"] is True


def test_gke_entry_time_is_the_log_entry_timestamp():
    event = _by_id(GKE_SAMPLES)["87efd529-6349-45d2-b905-fc607e6c5d3b"]
    assert event.time == pytest.approx(1596661650.97475)
    assert event.document["stage"] == "ResponseComplete"


def test_gke_caller_ip_spelled_with_capital_ip_is_accepted():
    entry = next(read_file(str(GKE_SAMPLES))).value
    metadata = {"callerIP": "198.51.100.4", "callerSuppliedUserAgent": "curl/8"}
    entry = {**entry, "protoPayload": {**entry["protoPayload"], "requestMetadata": metadata}}
    (event,) = decode_value(entry, Source("test"))
    assert event.document["sourceIPs"] == ["198.51.100.4"]


def test_gke_entry_without_method_name_is_dead_lettered_with_reason():
    entry = next(read_file(str(GKE_SAMPLES))).value
    payload = {k: v for k, v in entry["protoPayload"].items() if k != "methodName"}
    (outcome,) = decode_value({**entry, "protoPayload": payload}, Source("test"))
    assert isinstance(outcome, DeadLetter)
    assert "methodName" in outcome.reason


def test_mixed_file_decodes_native_gke_and_aks_records():
    outcomes = _outcomes(GKE_SAMPLES.parent / "kubernetes-audit-mixed.jsonl")
    assert Counter(type(o).__name__ for o in outcomes) == {"AuditEvent": 5}
    providers = [o.cloud.provider if o.cloud else None for o in outcomes]
    assert providers == [None, None, None, "gcp", "azure"]


def test_aks_diagnostic_envelope_with_event_as_json_string_normalizes():
    (event,) = _outcomes(GKE_SAMPLES.parent / "aks-diagnostic.jsonl")
    assert event.event_id == "ad26f7bc-f1c6-4097-90f1-e0924e12f257"
    assert (event.cloud.provider, event.cloud.account_id, event.cluster) == (
        "azure",
        "ae2861b3-e901-49bd-99f3-660eb5747107",
        "test-cluster",
    )


@pytest.mark.parametrize("index", range(51))
def test_falco_event_wrapped_as_gke_keeps_verb_user_and_object(falco, index):
    native = falco[index]
    (event,) = decode_value(as_gke_logentry(native, project="p-123456", cluster="c1"), Source("test"))
    doc = event.document
    assert doc["verb"] == native["verb"]
    assert doc["user"]["username"] == native["user"]["username"]
    for key in ("resource", "subresource", "name"):
        assert doc["objectRef"].get(key) == native["objectRef"].get(key)
    assert (event.cluster, event.cloud.account_id) == ("c1", "p-123456")
