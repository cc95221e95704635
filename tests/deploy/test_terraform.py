"""The terraform modules hand kubesigma options it accepts, route what its decoders read, and describe an
EKS export path (subscription filter → Firehose → S3) that `kubesigma run` reads back to the same alerts.

Terraform and the cloud providers cannot run here; see terraform_hcl.py. The EKS path is rebuilt in moto
(a test double for AWS, the only one available), configured from the module's own values.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import boto3
import orjson
import pytest
from deploy.terraform_hcl import MODULES, load, named, output_list, render, unquote

from kubesigma.connectors.secrets import parse_ref
from kubesigma.pipeline.cli import main
from kubesigma.pipeline.commands import flex_template
from kubesigma.pipeline.options import validate_args
from support.falco_traces import falco_events

CREDENTIAL_WORDS = ("password", "secret", "token", "api_key", "apikey", "access_key", "credential")


@pytest.mark.parametrize("module", MODULES)
def test_every_variable_and_output_is_described(module: str) -> None:
    parsed = load(module)
    blocks = [
        (kind, name, body)
        for kind in ("variable", "output")
        for b in parsed[kind]
        for name, body in b.items()
    ]
    assert blocks
    undescribed = [
        f"{kind} {name}" for kind, name, body in blocks if not unquote(body.get("description", ""))
    ]
    assert undescribed == []


@pytest.mark.parametrize("module", MODULES)
def test_no_variable_carries_a_credential(module: str) -> None:
    """Credentials come from the standard chains where the job runs, never through terraform variables; a
    variable about one may only name a secret manager entry, and its validation holds it to that form."""
    offending = []
    for block in load(module)["variable"]:
        for name, body in block.items():
            if not any(word in name.lower() for word in CREDENTIAL_WORDS):
                continue
            conditions = " ".join(str(v.get("condition", "")) for v in body.get("validation", []))
            if "/secrets/" not in conditions:
                offending.append(name)
    assert offending == []


GKE_VALUES = {
    "var.project_id": "acme-prod",
    "var.region": "europe-west1",
    "google_service_account.worker.email": "kubesigma-worker@acme-prod.iam.gserviceaccount.com",
    "google_storage_bucket.job.name": "acme-prod-kubesigma",
    "google_pubsub_subscription.audit.id": "projects/acme-prod/subscriptions/kubesigma-gke-audit",
}


def test_gke_run_args_are_options_kubesigma_accepts() -> None:
    args = output_list(load("gke"), "kubesigma_run_args", GKE_VALUES)
    validate_args(args)
    assert "--pubsub-subscription=projects/acme-prod/subscriptions/kubesigma-gke-audit" in args
    assert "--streaming" in args


def test_gke_sink_routes_the_audit_logs_and_resources_kubesigma_decodes() -> None:
    """GKE's API audit entries are on `k8s_cluster`; the control plane's on `gke_cluster`. Reads (the
    secret enumeration and discovery detections) are only in Data Access logs, routed by default."""
    gke = load("gke")
    sink_filter = named(gke["locals"], "sink_filter")
    for resource_type in ("k8s_cluster", "gke_cluster"):
        assert f'\\"{resource_type}\\"' in sink_filter
    audit_logs = named(gke["locals"], "audit_logs")
    for log in ("cloudaudit.googleapis.com%2Factivity", "cloudaudit.googleapis.com%2Fdata_access"):
        assert log in audit_logs
    assert named(gke["variable"], "include_data_access")["default"] is True


def test_gke_subscription_outlives_a_stopped_job() -> None:
    subscription = named(load("gke")["resource"], "google_pubsub_subscription", "audit")
    assert unquote(subscription["expiration_policy"][0]["ttl"]) == ""


# ---- EKS: the export path, rebuilt in moto from the module's values ----

CLUSTER = "falco-eks"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def falco() -> list[dict]:
    return falco_events()


def eks_values(bucket: str) -> dict[str, str]:
    eks = load("eks")
    values = {"var.cluster_name": CLUSTER, "var.name": "kubesigma", "data.aws_region.current.name": REGION}
    values["local.prefix"] = render(named(eks["locals"], "prefix"), values)
    values["local.log_group"] = render(named(eks["locals"], "log_group"), values)
    values["aws_s3_bucket.audit.bucket"] = bucket
    return values


def build_export_path(bucket: str) -> dict[str, str]:
    """Bucket, Firehose and subscription filter as main.tf declares them (prefix, compression, pattern)."""
    eks = load("eks")
    values = eks_values(bucket)
    stream = named(eks["resource"], "aws_kinesis_firehose_delivery_stream", "audit")
    s3 = stream["extended_s3_configuration"][0]
    subscription = named(eks["resource"], "aws_cloudwatch_log_subscription_filter", "audit")

    s3_client = boto3.client("s3", region_name=REGION)
    s3_client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    firehose = boto3.client("firehose", region_name=REGION)
    arn = firehose.create_delivery_stream(
        DeliveryStreamName=render(stream["name"], values),
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": values["local.prefix"],
            "CompressionFormat": unquote(s3["compression_format"]),
        },
    )["DeliveryStreamARN"]
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=values["local.log_group"])
    logs.put_subscription_filter(
        logGroupName=values["local.log_group"],
        filterName=render(subscription["name"], values),
        filterPattern=unquote(subscription["filter_pattern"]),
        destinationArn=arn,
        roleArn="arn:aws:iam::123456789012:role/logs-to-firehose",
    )
    return values


def put_audit_log(log_group: str, events: list[dict]) -> None:
    """The API server's audit stream, a few events per call (each call is one envelope), plus a line of
    the authenticator's stream, which the subscription forwards too."""
    logs = boto3.client("logs", region_name=REGION)
    base = int(1_000 * time.time()) - 3_600_000  # CloudWatch refuses events older than 14 days
    logs.create_log_stream(logGroupName=log_group, logStreamName="kube-apiserver-audit-1f2e")
    for start in range(0, len(events), 10):
        chunk = events[start : start + 10]
        logs.put_log_events(
            logGroupName=log_group,
            logStreamName="kube-apiserver-audit-1f2e",
            logEvents=[
                {"timestamp": base + 1000 * (start + i), "message": orjson.dumps(e).decode()}
                for i, e in enumerate(chunk)
            ],
        )
    logs.create_log_stream(logGroupName=log_group, logStreamName="authenticator-99aa")
    logs.put_log_events(
        logGroupName=log_group,
        logStreamName="authenticator-99aa",
        logEvents=[{"timestamp": base, "message": 'level=info msg="access granted"'}],
    )


def run_job(tmp_path: Path, name: str, args: list[str]) -> tuple[list[dict], dict]:
    alerts, metrics = tmp_path / f"{name}.alerts.jsonl", tmp_path / f"{name}.metrics.json"
    argv = ["run", *args, f"--alerts-out={alerts}", f"--dead-letter={tmp_path / name}.dl"]
    assert main([*argv, f"--metrics-out={metrics}", "--suppress-window=0s"]) == 0
    return [json.loads(line) for line in alerts.read_text().splitlines()], json.loads(metrics.read_text())


def by_rule_and_event(alerts: list[dict]) -> Counter:
    return Counter((a["rule"]["id"], a["event"]["id"]) for a in alerts)


@pytest.mark.slow
def test_eks_export_read_from_s3_gives_the_raw_traces_alerts(aws, falco, tmp_path: Path) -> None:
    values = build_export_path("kubesigma-eks-audit-test")
    put_audit_log(values["local.log_group"], falco)
    args = output_list(load("eks"), "kubesigma_run_args", values)
    validate_args(args)

    native = tmp_path / "native.jsonl"
    native.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in falco))
    expected, _ = run_job(tmp_path, "native", [f"--input={native}"])
    alerts, metrics = run_job(tmp_path, "s3", [*args, f"--s3_endpoint_url={aws}"])

    assert (metrics["normalized"], metrics["dead_lettered"], metrics["skipped"]) == (51, 0, 1)
    assert expected and by_rule_and_event(alerts) == by_rule_and_event(expected)
    assert {(a["cloud"]["provider"], a["orchestrator"]["cluster"]["name"]) for a in alerts} == {
        ("aws", CLUSTER)
    }


def test_gke_elasticsearch_args_name_a_secret_kubesigma_can_read() -> None:
    expression = named(load("gke")["output"], "elasticsearch_run_args")["value"]
    arg = re.search(r'"(--es-api-key-secret=\$\{var\.elasticsearch_api_key_secret\})"', expression)
    assert arg, expression
    rendered = render(
        arg.group(1), {"var.elasticsearch_api_key_secret": "projects/acme-prod/secrets/es-api-key"}
    )
    validate_args([rendered])
    ref = parse_ref(rendered.split("=", 1)[1], "--es-api-key-secret")
    assert ref.name == "projects/acme-prod/secrets/es-api-key/versions/latest"


# ---- GKE: the optional Flex Template job ----


def flex_job() -> dict:
    return named(load("gke")["resource"], "google_dataflow_flex_template_job", "detections")


def test_gke_flex_template_job_is_off_by_default_and_drained_on_delete() -> None:
    gke = load("gke")
    assert named(gke["variable"], "dataflow_job")["default"] is False
    job = flex_job()
    assert job["count"] == "${var.dataflow_job ? 1 : 0}"
    assert unquote(job["on_delete"]) == "drain"
    assert job["provider"] == "google-beta"


def test_gke_flex_template_job_runs_as_the_worker_on_the_modules_bucket() -> None:
    job = flex_job()
    assert job["service_account_email"] == "${google_service_account.worker.email}"
    assert render(job["temp_location"], GKE_VALUES) == "gs://acme-prod-kubesigma/tmp"
    assert render(job["staging_location"], GKE_VALUES) == "gs://acme-prod-kubesigma/staging"
    assert job["sdk_container_image"] == "${var.flex_template_image}"
    assert "local.job_parameters" in job["parameters"] and "var.job_parameters" in job["parameters"]


def test_gke_flex_template_parameters_are_template_parameters_kubesigma_accepts() -> None:
    """Every key is a parameter metadata.json declares (Dataflow refuses others at launch), and what the
    launcher makes of them is a `kubesigma run` kubesigma accepts, reading the module's subscription and
    writing to its bucket, with the API key read from the module's secret."""
    gke = load("gke")
    values = {**GKE_VALUES, "var.elasticsearch_url": "https://es.acme.internal:9200"}
    values["var.elasticsearch_api_key_secret"] = "projects/acme-prod/secrets/es-api-key"
    parameters = {
        name: render(value, values)
        for local in ("job_parameters", "elasticsearch_parameters")
        for name, value in named(gke["locals"], local).items()
    }
    declared = {p.name for p in flex_template.template_parameters()}
    assert set(parameters) <= declared
    args = flex_template.launcher_argv([f"--{name}={value}" for name, value in parameters.items()])
    validate_args(args)
    assert "--pubsub-subscription=projects/acme-prod/subscriptions/kubesigma-gke-audit" in args
    assert "--alerts-out=gs://acme-prod-kubesigma/alerts" in args
    assert "--es-api-key-secret=projects/acme-prod/secrets/es-api-key" in args
