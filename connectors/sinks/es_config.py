"""Elasticsearch settings of a kubesigma job: where the cluster is, how to trust it (TLS verification on,
a CA bundle), and credentials from the environment (`KUBESIGMA_ES_API_KEY`, `KUBESIGMA_ES_USERNAME`,
`KUBESIGMA_ES_PASSWORD`), from files named by options, or from Google or AWS secret managers named by
options (connectors/secrets.py, read with the cloud's standard credential chain); they are read where the
client is built (the worker's `setup`), never stored in options, pickled DoFns, reprs or logs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import PipelineOptions

from kubesigma.connectors.secrets import SecretError, parse_ref, read_secret

log = logging.getLogger(__name__)

ENV_API_KEY = "KUBESIGMA_ES_API_KEY"
ENV_USERNAME = "KUBESIGMA_ES_USERNAME"
ENV_PASSWORD = "KUBESIGMA_ES_PASSWORD"
DEAD_LETTER = "dead_letter"
DEFAULT_PREFIX = "kubesigma"
SUPPORTED_MAJOR = 8  # the client sends compatible-with=8; see docs/elasticsearch.md

# Per-item and whole-request statuses worth another try: rejected (queue full), and server-side trouble.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class ElasticsearchConfigError(ValueError):
    """An Elasticsearch option or credential setting is wrong; the message says which and why."""


class ElasticsearchUnavailable(RuntimeError):
    """The cluster cannot be reached or refuses us (TLS, credentials, version); the message says why."""


@dataclass(frozen=True)
class ElasticsearchConfig:
    """Where and how to write. Holds no secret: only the names of files that hold them."""

    url: str | None = None
    cloud_id: str | None = None
    ca_certs: str | None = None
    index_prefix: str = DEFAULT_PREFIX
    index_events: bool = False
    api_key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    api_key_secret: str | None = None
    password_secret: str | None = None
    retention_days: int = 30
    batch_size: int = 500
    batch_bytes: int = 5 * 1024 * 1024
    request_timeout: float = 30.0
    max_attempts: int = 10
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def validate(self) -> ElasticsearchConfig:
        """Fail fast on combinations that cannot work; returns self."""
        if bool(self.url) == bool(self.cloud_id):
            raise ElasticsearchConfigError("give exactly one of --es-url and --es-cloud-id")
        if self.url:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ElasticsearchConfigError(f"--es-url {self.url!r}: expected http(s)://host[:port]")
            if parts.username or parts.password:
                raise ElasticsearchConfigError(
                    "--es-url must not contain credentials; use KUBESIGMA_ES_API_KEY or "
                    "--es-api-key-file, or KUBESIGMA_ES_USERNAME with KUBESIGMA_ES_PASSWORD/--es-password-file"
                )
        if self.ca_certs and not Path(self.ca_certs).is_file():
            raise ElasticsearchConfigError(f"--es-ca-certs {self.ca_certs}: no such file")
        if self.ca_certs and self.url and urlsplit(self.url).scheme != "https":
            raise ElasticsearchConfigError("--es-ca-certs is given but --es-url is not https://")
        for flag, path in (
            ("--es-api-key-file", self.api_key_file),
            ("--es-password-file", self.password_file),
        ):
            if path and not Path(path).is_file():
                raise ElasticsearchConfigError(f"{flag} {path}: no such file")
        for flag, ref in (
            ("--es-api-key-secret", self.api_key_secret),
            ("--es-password-secret", self.password_secret),
        ):
            if ref:
                try:
                    parse_ref(ref, flag)
                except SecretError as err:
                    raise ElasticsearchConfigError(str(err)) from None
        if self.api_key_file and self.api_key_secret:
            raise ElasticsearchConfigError(
                "--es-api-key-file and --es-api-key-secret are exclusive: pick one"
            )
        if self.password_file and self.password_secret:
            raise ElasticsearchConfigError(
                "--es-password-file and --es-password-secret are exclusive: pick one"
            )
        if (self.api_key_file or self.api_key_secret) and (
            self.username or self.password_file or self.password_secret
        ):
            raise ElasticsearchConfigError(
                "an API key (--es-api-key-file/--es-api-key-secret) and a user and password are exclusive: pick one"
            )
        if (self.password_file or self.password_secret) and not (
            self.username or os.environ.get(ENV_USERNAME)
        ):
            raise ElasticsearchConfigError(
                f"--es-password-file/--es-password-secret need --es-username (or {ENV_USERNAME} in the environment)"
            )
        if (
            not self.index_prefix
            or self.index_prefix != self.index_prefix.lower()
            or "*" in self.index_prefix
        ):
            raise ElasticsearchConfigError(
                f"--es-index-prefix {self.index_prefix!r}: must be a non-empty lowercase index name part"
            )
        if self.retention_days < 1:
            raise ElasticsearchConfigError("--es-retention-days must be at least 1")
        self.credentials()  # env/file combinations are checked here too, without keeping the values
        if self.url and urlsplit(self.url).scheme == "http" and self.credentials().kind != "none":
            host = urlsplit(self.url).hostname or ""
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise ElasticsearchConfigError(
                    f"refusing to send credentials over plain http to {host}; use https:// (and --es-ca-certs)"
                )
        return self

    def credentials(self) -> Credentials:
        """Read credentials now (in the worker, or at start-up): files named by options first, then env."""
        api_key = (
            _read_secret(self.api_key_file, "--es-api-key-file")
            or _read_managed(self.api_key_secret, "--es-api-key-secret")
            or os.environ.get(ENV_API_KEY)
        )
        username = self.username or os.environ.get(ENV_USERNAME)
        password = (
            _read_secret(self.password_file, "--es-password-file")
            or _read_managed(self.password_secret, "--es-password-secret")
            or os.environ.get(ENV_PASSWORD)
        )
        if api_key and (self.username or self.password_file or self.password_secret):
            raise ElasticsearchConfigError(
                f"an API key ({ENV_API_KEY}) and --es-username/--es-password-file are exclusive: pick one"
            )
        if api_key:
            return Credentials("api_key", api_key=api_key)
        if username and not password:
            raise ElasticsearchConfigError(
                f"Elasticsearch user {username!r} has no password: set {ENV_PASSWORD} or --es-password-file"
            )
        if password and not username:
            raise ElasticsearchConfigError(
                f"a password is set but no user: set {ENV_USERNAME} or --es-username"
            )
        if username and password:
            return Credentials("basic", username=username, password=password)
        return Credentials("none")

    @property
    def target(self) -> str:
        """Where we write, for logs and dead letters: the URL (never credentials) or the cloud id's name."""
        if self.url:
            return self.url
        return f"cloud:{(self.cloud_id or '').split(':', 1)[0]}"


def _read_secret(path: str | None, flag: str) -> str | None:
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ElasticsearchConfigError(f"{flag} {path}: cannot read ({err.strerror})") from err
    if not value:
        raise ElasticsearchConfigError(f"{flag} {path}: the file is empty")
    return value


def _read_managed(ref: str | None, flag: str) -> str | None:
    if not ref:
        return None
    try:
        return read_secret(parse_ref(ref, flag), flag)
    except SecretError as err:
        raise ElasticsearchConfigError(str(err)) from None


@dataclass(frozen=True)
class Credentials:
    """Secrets for one client; repr never shows them."""

    kind: str  # "api_key" | "basic" | "none"
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def client_kwargs(self) -> dict[str, Any]:
        if self.kind == "api_key":
            return {"api_key": self.api_key}
        if self.kind == "basic":
            return {"basic_auth": (self.username, self.password)}
        return {}


class ElasticsearchOptions(PipelineOptions):
    """Elasticsearch options of `kubesigma run`. Secrets are never option values: see --help."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument(
            "--es-url",
            dest="es_url",
            help="Index alerts into this Elasticsearch (http(s)://host:port). TLS certificates are verified.",
        )
        parser.add_argument(
            "--es-cloud-id", dest="es_cloud_id", help="Index alerts into this Elastic Cloud deployment."
        )
        parser.add_argument(
            "--es-ca-certs",
            dest="es_ca_certs",
            help="PEM file of the CA that signed the cluster's certificate (for private CAs).",
        )
        parser.add_argument(
            "--es-index-events",
            dest="es_index_events",
            action="store_true",
            default=False,
            help="Also index every normalized event (for hunting) into <prefix>-events-YYYY.MM.DD.",
        )
        parser.add_argument(
            "--es-index-prefix",
            dest="es_index_prefix",
            default=DEFAULT_PREFIX,
            help="Index names start with this (default kubesigma: kubesigma-alerts-YYYY.MM.DD).",
        )
        parser.add_argument(
            "--es-api-key-file",
            dest="es_api_key_file",
            help=f"File holding an Elasticsearch API key (else {ENV_API_KEY} from the environment).",
        )
        parser.add_argument(
            "--es-api-key-secret",
            dest="es_api_key_secret",
            help="Secret holding the API key, read by the workers with their cloud identity: "
            "projects/P/secrets/S[/versions/V] (Google Secret Manager) or an AWS Secrets Manager ARN.",
        )
        parser.add_argument(
            "--es-username",
            dest="es_username",
            help=f"Elasticsearch user (else {ENV_USERNAME}); the password comes from {ENV_PASSWORD} "
            "or --es-password-file.",
        )
        parser.add_argument(
            "--es-password-file",
            dest="es_password_file",
            help="File holding the password of --es-username.",
        )
        parser.add_argument(
            "--es-password-secret",
            dest="es_password_secret",
            help="Secret holding the password of --es-username (same forms as --es-api-key-secret).",
        )
        parser.add_argument(
            "--es-retention-days",
            dest="es_retention_days",
            type=int,
            default=30,
            help="Days of date-named indices kept: an ILM delete phase where the cluster has ILM, "
            "else run `kubesigma es retention --keep-days N` (default 30).",
        )


def config_from_options(options: PipelineOptions) -> ElasticsearchConfig | None:
    """The validated config, or None when neither --es-url nor --es-cloud-id is given."""
    es = options.view_as(ElasticsearchOptions)
    if not es.es_url and not es.es_cloud_id:
        for flag, value in (
            ("--es-ca-certs", es.es_ca_certs),
            ("--es-index-events", es.es_index_events),
            ("--es-api-key-file", es.es_api_key_file),
            ("--es-username", es.es_username),
            ("--es-password-file", es.es_password_file),
            ("--es-api-key-secret", es.es_api_key_secret),
            ("--es-password-secret", es.es_password_secret),
        ):
            if value:
                raise ElasticsearchConfigError(f"{flag} needs --es-url or --es-cloud-id")
        return None
    return ElasticsearchConfig(
        url=es.es_url,
        cloud_id=es.es_cloud_id,
        ca_certs=es.es_ca_certs,
        index_prefix=es.es_index_prefix,
        index_events=bool(es.es_index_events),
        api_key_file=es.es_api_key_file,
        username=es.es_username,
        password_file=es.es_password_file,
        api_key_secret=es.es_api_key_secret,
        password_secret=es.es_password_secret,
        retention_days=es.es_retention_days,
    ).validate()


def make_client(config: ElasticsearchConfig, *, timeout: float | None = None) -> Any:
    """An Elasticsearch client that verifies TLS and does no retrying of its own (the sink retries per
    item, with backoff, and must see every failure)."""
    from elasticsearch import Elasticsearch

    kwargs: dict[str, Any] = {
        "request_timeout": timeout or config.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": True,
        **config.credentials().client_kwargs(),
    }
    if config.ca_certs:
        kwargs["ca_certs"] = config.ca_certs
    if config.cloud_id:
        return Elasticsearch(cloud_id=config.cloud_id, **kwargs)
    return Elasticsearch(config.url, **kwargs)


def explain_connection_error(config: ElasticsearchConfig, err: Exception) -> str:
    from elastic_transport import TlsError

    # the transport's message is generic ("TLS error"); the cause is in its wrapped errors
    causes = "; ".join(str(e) for e in getattr(err, "errors", ()) or ()) or str(err)
    if isinstance(err, TlsError) or "CERTIFICATE_VERIFY_FAILED" in causes:
        hint = (
            "" if config.ca_certs else "; if the cluster uses a private CA, pass its PEM with --es-ca-certs"
        )
        return f"TLS certificate of {config.target} could not be verified ({causes}){hint}"
    return f"cannot reach Elasticsearch at {config.target}: {causes}"


def error_reason(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        e = body["error"]
        return f"{e.get('type')}: {e.get('reason')}"
    return str(err)[:500]
