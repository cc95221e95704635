"""Every event decoded from a cloud delivery says which cloud, account, region (where the delivery
names it) and cluster it came from: ECS cloud.provider, cloud.account.id, cloud.region, orchestrator.cluster.name."""

from __future__ import annotations

import orjson
import pytest

from kubesigma.connectors.delivery import (
    as_cloudtrail_file,
    as_cloudtrail_record,
    as_cloudwatch_envelope,
    as_eventbridge_event,
    as_gke_logentry,
    as_kinesis_data,
)
from kubesigma.connectors.formats import decode_value
from kubesigma.connectors.formats.cloudwatch import decode_kinesis_data
from kubesigma.connectors.model import Source
from support.paths import FORMAT_SAMPLES

GKE_SAMPLE = orjson.loads((FORMAT_SAMPLES / "gke-cloud-audit-logentries.jsonl").read_bytes().splitlines()[0])


def _deliveries(native):
    record = as_cloudtrail_record("CreateCluster", cluster="c1", account="111122223333", region="eu-west-1")
    return {
        "gke-sample": (GKE_SAMPLE, ("gcp", "elastic-siem", "us-central1", "analysis-cluster")),
        "gke-wrapped": (
            as_gke_logentry(native, project="acme-prod", cluster="c1", location="europe-west1-b"),
            ("gcp", "acme-prod", "europe-west1", "c1"),
        ),
        "cloudwatch": (
            as_cloudwatch_envelope([native], cluster="c1", account="111122223333"),
            ("aws", "111122223333", None, "c1"),
        ),
        "cloudtrail": (record, ("aws", "111122223333", "eu-west-1", "c1")),
        "cloudtrail-file": (as_cloudtrail_file([record]), ("aws", "111122223333", "eu-west-1", "c1")),
        "eventbridge": (as_eventbridge_event(record), ("aws", "111122223333", "eu-west-1", "c1")),
    }


@pytest.mark.parametrize(
    "delivery", ["gke-sample", "gke-wrapped", "cloudwatch", "cloudtrail", "cloudtrail-file", "eventbridge"]
)
def test_cloud_delivery_names_provider_account_region_and_cluster(falco, delivery):
    value, expected = _deliveries(falco[0])[delivery]
    (event,) = decode_value(value, Source("test"))
    assert (event.cloud.provider, event.cloud.account_id, event.cloud.region, event.cluster) == expected


def test_kinesis_delivery_adds_the_stream_region(falco):
    data = as_kinesis_data(as_cloudwatch_envelope([falco[0]], cluster="c1", account="111122223333"))
    (event,) = decode_kinesis_data(data, Source("kinesis://s/shard-0"), region="ap-southeast-2")
    assert (event.cloud.provider, event.cloud.account_id, event.cloud.region, event.cluster) == (
        "aws",
        "111122223333",
        "ap-southeast-2",
        "c1",
    )
