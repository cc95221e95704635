"""Secrets named by reference in a cloud secret manager, read where they are used (a Dataflow or Flink
worker, or at start-up to fail fast) with the cloud's standard credential chain: Application Default
Credentials for Google Secret Manager, the AWS default chain for AWS Secrets Manager. Only the reference
travels in pipeline options; values are never logged, pickled or put in an error message.

References:
- `projects/<project>/secrets/<name>[/versions/<version>]` (Google; the version defaults to `latest`)
- `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>` (AWS; the region comes from the ARN)
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass

# gcloud's own endpoint override variable, honoured the same way (regional or private endpoints, tests).
GCP_ENDPOINT_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"
GCP_ENDPOINT = "https://secretmanager.googleapis.com/"
TIMEOUT_SECONDS = 30.0

_GCP = re.compile(
    r"^projects/([a-z0-9][a-z0-9.:-]{0,98})/secrets/([A-Za-z0-9_-]{1,255})(?:/versions/([A-Za-z0-9_-]+))?$"
)
_AWS = re.compile(r"^arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]+):(\d{12}):secret:([A-Za-z0-9/_+=.@-]+)$")


class SecretError(ValueError):
    """A secret reference is malformed or cannot be read; the message names the reference, not the value."""


@dataclass(frozen=True)
class SecretRef:
    cloud: str  # "gcp" | "aws"
    name: str  # the full resource name or ARN
    region: str | None = None

    def __str__(self) -> str:
        return self.name


def parse_ref(text: str, flag: str) -> SecretRef:
    """The reference, or a SecretError saying what a reference looks like."""
    gcp = _GCP.match(text)
    if gcp:
        project, secret, version = gcp.groups()
        return SecretRef("gcp", f"projects/{project}/secrets/{secret}/versions/{version or 'latest'}")
    aws = _AWS.match(text)
    if aws:
        return SecretRef("aws", text, region=aws.group(2))
    raise SecretError(
        f"{flag} {text!r}: expected projects/<project>/secrets/<name>[/versions/<v>] (Google Secret Manager) "
        "or arn:aws:secretsmanager:<region>:<account>:secret:<name> (AWS Secrets Manager)"
    )


def read_secret(ref: SecretRef, flag: str) -> str:
    """The secret's value (text, surrounding whitespace removed); never empty."""
    value = _read_gcp(ref, flag) if ref.cloud == "gcp" else _read_aws(ref, flag)
    value = value.strip()
    if not value:
        raise SecretError(f"{flag} {ref}: the secret is empty")
    return value


def _read_gcp(ref: SecretRef, flag: str) -> str:
    import google.auth
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import AuthorizedSession

    endpoint = os.environ.get(GCP_ENDPOINT_ENV) or GCP_ENDPOINT
    url = f"{endpoint.rstrip('/')}/v1/{ref.name}:access"
    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        response = AuthorizedSession(credentials).get(url, timeout=TIMEOUT_SECONDS)
    except (GoogleAuthError, OSError) as err:
        raise SecretError(
            f"{flag} {ref}: cannot reach Secret Manager ({type(err).__name__}: {err})"
        ) from None
    if response.status_code != 200:
        raise SecretError(
            f"{flag} {ref}: Secret Manager answered HTTP {response.status_code} ({_gcp_reason(response)})"
        )
    try:
        data = response.json()["payload"]["data"]
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (ValueError, KeyError, TypeError):
        raise SecretError(f"{flag} {ref}: Secret Manager's answer holds no text payload") from None


def _gcp_reason(response: object) -> str:
    try:
        return str(response.json()["error"]["status"])  # type: ignore[attr-defined]
    except (ValueError, KeyError, TypeError):
        return "no error status"


def _read_aws(ref: SecretRef, flag: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("secretsmanager", region_name=ref.region)
        answer = client.get_secret_value(SecretId=ref.name)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "error")
        raise SecretError(f"{flag} {ref}: AWS Secrets Manager refused ({code})") from None
    except BotoCoreError as err:
        raise SecretError(f"{flag} {ref}: cannot reach AWS Secrets Manager ({type(err).__name__})") from None
    if "SecretString" not in answer:
        raise SecretError(f"{flag} {ref}: the secret is binary; store the key or password as text")
    return str(answer["SecretString"])
