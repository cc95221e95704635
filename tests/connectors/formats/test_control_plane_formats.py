"""Control-plane audit records around a cluster: GCP Cloud Audit Logs of container.googleapis.com and
AWS CloudTrail records of eks.amazonaws.com (single, S3 `Records` files, EventBridge envelopes)."""

from __future__ import annotations

from collections import Counter

from kubesigma.connectors.delivery import as_cloudtrail_file, as_cloudtrail_record, as_eventbridge_event
from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.model import AWS_CLOUDTRAIL, GCP_AUDIT, AuditEvent, DeadLetter, Source

SOURCE = Source("s3://trail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/28/x.json.gz")

# A cluster deletion as Cloud Audit Logs records it (Admin Activity log of the Kubernetes Engine API).
GKE_DELETE_CLUSTER = {
    "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "status": {},
        "authenticationInfo": {"principalEmail": "admin@example.com"},
        "requestMetadata": {
            "callerIp": "198.51.100.20",
            "callerSuppliedUserAgent": "google-cloud-sdk gcloud/480.0.0 command/gcloud.container.clusters.delete",
        },
        "serviceName": "container.googleapis.com",
        "methodName": "google.container.v1.ClusterManager.DeleteCluster",
        "authorizationInfo": [
            {
                "permission": "container.clusters.delete",
                "granted": True,
                "resource": "projects/acme-prod/zones/europe-west1-b/clusters/payments",
            }
        ],
        "resourceName": "projects/acme-prod/zones/europe-west1-b/clusters/payments",
        "request": {
            "name": "projects/acme-prod/locations/europe-west1-b/clusters/payments",
            "@type": "type.googleapis.com/google.container.v1.DeleteClusterRequest",
        },
        "resourceLocation": {"currentLocations": ["europe-west1-b"]},
    },
    "insertId": "1x2y3z4w5v6u",
    "resource": {
        "type": "gke_cluster",
        "labels": {"cluster_name": "payments", "location": "europe-west1-b", "project_id": "acme-prod"},
    },
    "timestamp": "2026-11-28T09:15:02.123456Z",
    "severity": "NOTICE",
    "logName": "projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity",
    "operation": {
        "id": "operation-1732785302123-abcd",
        "producer": "container.googleapis.com",
        "first": True,
    },
    "receiveTimestamp": "2026-11-28T09:15:03.012345678Z",
}


def test_gke_cluster_deletion_is_a_gcp_audit_event():
    (event,) = decode_value(GKE_DELETE_CLUSTER, SOURCE)
    assert [view[0] for view in event.views] == [GCP_AUDIT]
    assert event.document is GKE_DELETE_CLUSTER


def test_gcp_audit_event_id_is_insert_id_with_cloud_and_cluster():
    (event,) = decode_value(GKE_DELETE_CLUSTER, SOURCE)
    assert event.event_id == "1x2y3z4w5v6u"
    assert (event.cloud.provider, event.cloud.account_id, event.cloud.region, event.cluster) == (
        "gcp",
        "acme-prod",
        "europe-west1",
        "payments",
    )
    assert (event.user_name, event.source_ip) == ("admin@example.com", "198.51.100.20")


def test_gcp_audit_cluster_falls_back_to_the_resource_name():
    entry = {**GKE_DELETE_CLUSTER, "resource": {"type": "gke_cluster", "labels": {"project_id": "acme-prod"}}}
    (event,) = decode_value(entry, SOURCE)
    assert event.cluster == "payments"


def test_gcp_audit_entry_without_insert_id_is_dead_lettered():
    entry = {k: v for k, v in GKE_DELETE_CLUSTER.items() if k != "insertId"}
    (outcome,) = decode_value(entry, SOURCE)
    assert isinstance(outcome, DeadLetter) and "insertId" in outcome.reason


def test_single_cloudtrail_record_is_an_aws_cloudtrail_event():
    record = as_cloudtrail_record(
        "DeleteCluster", cluster="payments", account="111122223333", region="eu-west-1"
    )
    (event,) = decode_value(record, SOURCE)
    assert event.logsource == AWS_CLOUDTRAIL
    assert event.event_id == record["eventID"]
    assert (event.cloud.provider, event.cloud.account_id, event.cloud.region, event.cluster) == (
        "aws",
        "111122223333",
        "eu-west-1",
        "payments",
    )


def test_cloudtrail_s3_file_gives_one_event_per_record():
    records = [
        as_cloudtrail_record(name, cluster=f"c{i}")
        for i, name in enumerate(["CreateCluster", "DescribeCluster"])
    ]
    records.append(as_cloudtrail_record("AssumeRole", event_source="sts.amazonaws.com", cluster=None))
    outcomes = list(decode_value(as_cloudtrail_file(records), SOURCE))
    assert [o.event_id for o in outcomes] == [r["eventID"] for r in records]
    assert [o.source.item for o in outcomes] == [0, 1, 2]
    assert [o.cluster for o in outcomes] == ["c0", "c1", None]


def test_cloudtrail_file_item_that_is_not_a_record_is_dead_lettered_alone():
    file = as_cloudtrail_file([as_cloudtrail_record("CreateCluster"), {"oops": 1}])
    outcomes = list(decode_value(file, SOURCE))
    assert Counter(type(o).__name__ for o in outcomes) == {"AuditEvent": 1, "DeadLetter": 1}
    assert outcomes[1].source.item == 1


def test_eventbridge_envelope_decodes_its_cloudtrail_detail():
    record = as_cloudtrail_record("CreateCluster", cluster="payments")
    (event,) = decode_value(as_eventbridge_event(record), SOURCE)
    assert isinstance(event, AuditEvent)
    assert event.document == record and event.event_id == record["eventID"]


def test_cloudtrail_record_without_event_id_is_dead_lettered():
    record = {k: v for k, v in as_cloudtrail_record("CreateCluster").items() if k != "eventID"}
    (outcome,) = decode_value(record, SOURCE)
    assert isinstance(outcome, DeadLetter) and "eventID" in outcome.reason
