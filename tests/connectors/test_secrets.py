"""Secrets named by reference: read through the cloud's standard credential chain, errors that name the
reference and never the value.

Test doubles, because neither secret manager runs here: moto's server for AWS Secrets Manager (reached
through the AWS default chain: credentials and endpoint from the environment), and a local HTTP endpoint
that answers Secret Manager's REST `:access` call and Google's OAuth token exchange. The GCP side goes
through the real Application Default Credentials chain: a service-account key file (a throwaway RSA key)
named by GOOGLE_APPLICATION_CREDENTIALS, whose signed JWT the local token endpoint exchanges for a token.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesigma.connectors.secrets import GCP_ENDPOINT_ENV, SecretError, parse_ref, read_secret
from kubesigma.connectors.sinks.es_config import ElasticsearchConfig, ElasticsearchConfigError

API_KEY = "c2VjcmV0LWtleS1pZDpuZXZlci1sb2ctbWU="  # never a real key
REGION = "eu-west-1"
TOKEN = "ya29.local-test-token"


def test_references_are_parsed_with_their_cloud_and_version() -> None:
    assert (
        parse_ref("projects/acme/secrets/es-key", "--f").name
        == "projects/acme/secrets/es-key/versions/latest"
    )
    assert parse_ref("projects/acme/secrets/es-key/versions/3", "--f").name.endswith("/versions/3")
    aws = parse_ref("arn:aws:secretsmanager:eu-west-1:123456789012:secret:es/key-AbCdEf", "--f")
    assert (aws.cloud, aws.region) == ("aws", "eu-west-1")


@pytest.mark.parametrize("bad", ["es-key", "projects/acme/es-key", "arn:aws:s3:::bucket", "https://vault/x"])
def test_a_malformed_reference_is_refused_with_the_flag_and_the_forms(bad: str) -> None:
    with pytest.raises(
        SecretError, match=r"--es-api-key-secret .*expected projects/<project>/secrets/<name>"
    ):
        parse_ref(bad, "--es-api-key-secret")


# ---- AWS Secrets Manager (moto) ----


def aws_secret(value: str) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    return str(client.create_secret(Name="kubesigma/es-api-key", SecretString=value + "\n")["ARN"])


def test_aws_secret_is_read_with_the_default_chain(aws: str) -> None:
    arn = aws_secret(API_KEY)
    assert read_secret(parse_ref(arn, "--es-api-key-secret"), "--es-api-key-secret") == API_KEY


def test_aws_missing_secret_names_the_reference_and_the_error_code(aws: str) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:kubesigma/none-XyZ123"
    with pytest.raises(
        SecretError, match=r"--es-api-key-secret arn:aws:.*none-XyZ123: .*ResourceNotFoundException"
    ):
        read_secret(parse_ref(arn, "--es-api-key-secret"), "--es-api-key-secret")


def test_elasticsearch_api_key_comes_from_the_secret_and_stays_out_of_reprs(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBESIGMA_ES_API_KEY", raising=False)
    config = ElasticsearchConfig(url="https://es.example:9200", api_key_secret=aws_secret(API_KEY)).validate()
    assert config.credentials().client_kwargs() == {"api_key": API_KEY}
    assert API_KEY not in repr(config)


def test_elasticsearch_refuses_a_key_file_and_a_key_secret_together(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("x")
    config = ElasticsearchConfig(
        url="https://es.example:9200",
        api_key_file=str(key_file),
        api_key_secret="projects/acme/secrets/es-key",
    )
    with pytest.raises(
        ElasticsearchConfigError, match="--es-api-key-file and --es-api-key-secret are exclusive"
    ):
        config.validate()


# ---- Google Secret Manager (local REST endpoint, real ADC chain) ----


class _SecretManager(BaseHTTPRequestHandler):
    secrets: dict[str, str] = {}
    calls: list[tuple[str, str]] = []

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # the OAuth token exchange of a service-account JWT
        form = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.calls.append(("token", form))
        if "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" not in form:
            self._answer(400, {"error": "unsupported_grant_type"})
            return
        self._answer(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})

    def do_GET(self) -> None:
        self.calls.append(("get", self.path))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"error": {"status": "UNAUTHENTICATED"}})
            return
        name = self.path.removeprefix("/v1/").removesuffix(":access")
        if name not in self.secrets:
            self._answer(404, {"error": {"status": "NOT_FOUND"}})
            return
        payload = base64.b64encode(self.secrets[name].encode()).decode()
        self._answer(200, {"name": name, "payload": {"data": payload}})


@pytest.fixture
def google(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_SecretManager]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecretManager)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme",
                "private_key_id": "test",
                "private_key": pem.decode(),
                "client_email": "kubesigma-worker@acme.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{base}/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv(GCP_ENDPOINT_ENV, base + "/")
    _SecretManager.secrets = {"projects/acme/secrets/es-key/versions/latest": API_KEY + "\n"}
    _SecretManager.calls = []
    try:
        yield _SecretManager
    finally:
        server.shutdown()
        server.server_close()


def test_google_secret_is_read_with_application_default_credentials(google: type[_SecretManager]) -> None:
    value = read_secret(
        parse_ref("projects/acme/secrets/es-key", "--es-api-key-secret"), "--es-api-key-secret"
    )
    assert value == API_KEY
    assert [kind for kind, _ in google.calls] == ["token", "get"]
    assert google.calls[1][1] == "/v1/projects/acme/secrets/es-key/versions/latest:access"


def test_google_missing_secret_names_the_reference_and_status(google: type[_SecretManager]) -> None:
    ref = parse_ref("projects/acme/secrets/other/versions/2", "--es-password-secret")
    with pytest.raises(
        SecretError, match=r"--es-password-secret projects/acme/secrets/other/versions/2: .*404 \(NOT_FOUND\)"
    ):
        read_secret(ref, "--es-password-secret")


def test_google_secret_errors_do_not_carry_the_value(google: type[_SecretManager]) -> None:
    google.secrets["projects/acme/secrets/es-key/versions/latest"] = "   "
    with pytest.raises(SecretError, match="the secret is empty") as err:
        read_secret(parse_ref("projects/acme/secrets/es-key", "--es-api-key-secret"), "--es-api-key-secret")
    assert API_KEY not in str(err.value)
