"""Elasticsearch sink: ECS alerts (and, optionally, every normalized event) into date-named indices,
exactly once, with the official `elasticsearch` client (8.x, matching the server's major).

Exactly once: a document's `_id` is its alert id (a pure function of rule and event), its index a pure
function of its `@timestamp`, and it is written with the bulk `create` op. A retry or a replay of the same
alert therefore either creates it or gets 409 (already written, counted as success); it never creates a
second copy. Rejections (429), server errors (5xx), timeouts and broken connections are retried with
exponential backoff, per item; what Elasticsearch refuses for good (a mapping error) goes to the
`dead_letter` output with Elasticsearch's own reason.

Credentials come from the environment (`KUBESIGMA_ES_API_KEY`, `KUBESIGMA_ES_USERNAME`,
`KUBESIGMA_ES_PASSWORD`), from files named by options, or from Google or AWS secret managers named by
options (connectors/secrets.py, read with the cloud's standard credential chain); they are read where the
client is built (the worker's `setup`), never stored in options, pickled DoFns, reprs or logs.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.windowed_value import WindowedValue

from kubesigma.connectors.model import AuditEvent, DeadLetter, Source
from kubesigma.connectors.model.alert import EVENT_SOFT_LIMIT, event_document
from kubesigma.connectors.secrets import SecretError, parse_ref, read_secret
from kubesigma.connectors.sinks import es_mapping

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


def _explain_connection_error(config: ElasticsearchConfig, err: Exception) -> str:
    from elastic_transport import TlsError

    # the transport's message is generic ("TLS error"); the cause is in its wrapped errors
    causes = "; ".join(str(e) for e in getattr(err, "errors", ()) or ()) or str(err)
    if isinstance(err, TlsError) or "CERTIFICATE_VERIFY_FAILED" in causes:
        hint = (
            "" if config.ca_certs else "; if the cluster uses a private CA, pass its PEM with --es-ca-certs"
        )
        return f"TLS certificate of {config.target} could not be verified ({causes}){hint}"
    return f"cannot reach Elasticsearch at {config.target}: {causes}"


# ------------------------------------------------------------------ templates, features, retention


def lifecycle_policy_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}-retention"


def install_templates(config: ElasticsearchConfig, client: Any | None = None) -> list[str]:
    """Install (idempotently) the index templates and, where the cluster has ILM, a delete-phase
    lifecycle policy. Returns the log lines it wrote; raises ElasticsearchUnavailable with a clear
    message when the cluster cannot be reached, verified or used."""
    from elasticsearch import ApiError, AuthenticationException, AuthorizationException
    from elasticsearch import ConnectionError as EsConnectionError

    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log.info("%s", line)

    own = client is None
    es = make_client(config) if client is None else client
    try:
        try:
            info = es.info()
        except EsConnectionError as err:
            raise ElasticsearchUnavailable(_explain_connection_error(config, err)) from err
        except (AuthenticationException, AuthorizationException) as err:
            raise ElasticsearchUnavailable(
                f"Elasticsearch at {config.target} refused our credentials ({err.meta.status})"
            ) from err
        version = str(info.get("version", {}).get("number", "?"))
        major = int(version.split(".")[0]) if version[:1].isdigit() else 0
        if major != SUPPORTED_MAJOR:
            raise ElasticsearchUnavailable(
                f"Elasticsearch {version} at {config.target}: kubesigma's client speaks {SUPPORTED_MAJOR}.x only"
            )
        say(
            f"elasticsearch: {config.target} runs Elasticsearch {version} (cluster {info.get('cluster_name')})"
        )
        ilm = _has_ilm(es)
        kinds = ["alerts", "events"] if config.index_events else ["alerts"]
        for kind in kinds:
            policy = None
            if ilm:
                policy = lifecycle_policy_name(config.index_prefix, kind)
                try:
                    es.ilm.put_lifecycle(
                        name=policy,
                        policy={
                            "_meta": {"managed_by": "kubesigma"},
                            "phases": {
                                "hot": {"min_age": "0ms", "actions": {}},
                                "delete": {"min_age": f"{config.retention_days}d", "actions": {"delete": {}}},
                            },
                        },
                    )
                except AuthorizationException:
                    say(
                        f"elasticsearch: not allowed to manage ILM policies (manage_ilm); {kind} indices "
                        f"are not deleted automatically: run `kubesigma es retention --keep-days {config.retention_days}` daily"
                    )
                    policy = None
                else:
                    say(
                        f"elasticsearch: ILM policy {policy} deletes {kind} indices {config.retention_days} days after their date"
                    )
            name = f"{config.index_prefix}-{kind}"
            body = es_mapping.index_template(config.index_prefix, kind, lifecycle_policy=policy)
            try:
                es.indices.put_index_template(name=name, **body)
            except ApiError as err:
                raise ElasticsearchUnavailable(
                    f"Elasticsearch at {config.target} refused index template {name}: {_error_reason(err)}"
                ) from err
            say(
                f"elasticsearch: index template {name} ({body['index_patterns'][0]}, mapping "
                f"{body['_meta']['mapping_version']}) installed"
            )
        if not ilm:
            say(
                "elasticsearch: this cluster has no index lifecycle management (ILM is an x-pack feature); "
                f"retention is not automatic: run `kubesigma es retention --keep-days {config.retention_days}` daily"
            )
        return lines
    finally:
        if own:
            es.close()


def _has_ilm(es: Any) -> bool:
    """Whether the cluster runs index lifecycle management (x-pack's `x-pack-ilm` module).

    Asked through the node's module list rather than an ILM endpoint: on a cluster without ILM those
    answer 405, which the client's node pool takes for a failing node."""
    from elasticsearch import ApiError

    try:
        info = es.nodes.info(node_id="_local", metric="plugins", filter_path="nodes.*.modules.name")
    except ApiError as err:
        log.debug("node module list answered %s; asking ILM directly", err.meta.status)
        try:
            es.ilm.get_status()
            return True
        except ApiError:
            return False
    nodes = (info.body if hasattr(info, "body") else info).get("nodes", {})
    modules = {m.get("name") for node in nodes.values() for m in node.get("modules", [])}
    return "x-pack-ilm" in modules


def expired_indices(names: Iterable[str], prefix: str, keep_days: int, today: date) -> list[str]:
    """Date-named kubesigma indices whose day is more than `keep_days` before `today`."""
    out = []
    for name in names:
        for kind in es_mapping.KINDS:
            day = es_mapping.day_of_index(name, prefix, kind)
            if day is not None and (today - day).days > keep_days:
                out.append(name)
    return sorted(out)


def delete_expired_indices(
    config: ElasticsearchConfig, keep_days: int, *, today: date | None = None, client: Any | None = None
) -> list[str]:
    """Delete whole date-named indices older than `keep_days` (what ILM's delete phase does where the
    cluster has ILM). Returns the deleted index names."""
    if keep_days < 1:
        raise ElasticsearchConfigError("--keep-days must be at least 1")
    own = client is None
    es = make_client(config) if client is None else client
    try:
        today = today or datetime.now(UTC).date()
        names = []
        for kind in es_mapping.KINDS:
            found = es.indices.get(
                index=es_mapping.index_pattern(config.index_prefix, kind),
                expand_wildcards="open,closed",
                allow_no_indices=True,
                ignore_unavailable=True,
            )
            names.extend(found.keys())
        doomed = expired_indices(names, config.index_prefix, keep_days, today)
        for name in doomed:
            es.indices.delete(index=name)
            log.info("elasticsearch: deleted index %s (older than %d days)", name, keep_days)
        return doomed
    finally:
        if own:
            es.close()


# ------------------------------------------------------------------ documents


def alert_doc_id(doc: dict[str, Any]) -> str:
    return doc["kubesigma"]["alert_id"]


def event_doc_id(doc: dict[str, Any]) -> str:
    return doc["kubesigma"]["event_id"]


@dataclass(slots=True)
class BulkItem:
    """One document on its way: where it goes, and the two NDJSON lines of its `create` op."""

    index: str
    doc_id: str
    action: bytes
    source: bytes
    payload: Any = None  # carried through to the caller (e.g. the Beam windowed value)

    @property
    def size(self) -> int:
        return len(self.action) + len(self.source) + 2


def bulk_item(doc: dict[str, Any], prefix: str, kind: str, payload: Any = None) -> BulkItem:
    """Raises KeyError/ValueError when the document has no id or a bad @timestamp."""
    doc_id = alert_doc_id(doc) if kind == "alerts" else event_doc_id(doc)
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"document id {doc_id!r} is not a non-empty string")
    index = es_mapping.index_name(prefix, kind, doc["@timestamp"])
    action = orjson.dumps({"create": {"_index": index, "_id": doc_id}})
    return BulkItem(index, doc_id, action, orjson.dumps(doc), payload)


@dataclass
class BulkOutcome:
    created: list[BulkItem] = field(default_factory=list)
    existed: list[BulkItem] = field(default_factory=list)  # 409: written by an earlier try or run
    failed: list[tuple[BulkItem, str]] = field(default_factory=list)  # permanent, with ES's reason
    attempts: int = 0
    retried_items: int = 0


def _error_reason(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        e = body["error"]
        return f"{e.get('type')}: {e.get('reason')}"
    return str(err)[:500]


def _item_reason(result: dict[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return f"{result.get('status')} {reason}"
    return f"{result.get('status')} {error}"


class BulkWriter:
    """Writes batches with bulk `create`, retrying what may succeed later, until each item is created,
    found already written (409), refused for good, or out of attempts."""

    def __init__(
        self,
        client: Any,
        config: ElasticsearchConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"BulkWriter({self.config.target})"

    def _backoff(self, attempt: int) -> float:
        # full jitter: spreads the retries of many workers hitting one overloaded cluster
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * (2**attempt))
        return self._rng.uniform(ceiling / 2, ceiling)

    def write(self, items: Sequence[BulkItem]) -> BulkOutcome:
        from elastic_transport import SerializationError
        from elasticsearch import ApiError, TransportError

        outcome = BulkOutcome()
        pending = list(items)
        last_reason = ""
        for attempt in range(self.config.max_attempts):
            if not pending:
                break
            if attempt:
                outcome.retried_items += len(pending)
                self._sleep(self._backoff(attempt - 1))
            outcome.attempts += 1
            lines: list[bytes] = []
            for item in pending:
                lines.append(item.action)
                lines.append(item.source)
            try:
                response = self.client.bulk(
                    operations=lines,
                    filter_path="errors,items.*.status,items.*.error",
                )
            except ApiError as err:
                status = err.meta.status
                last_reason = f"{status} {_error_reason(err)}"
                if status in RETRYABLE_STATUS:
                    log.warning("elasticsearch bulk of %d: %s; retrying", len(pending), last_reason)
                    continue
                if status == 413 and len(pending) > 1:
                    # over http.max_content_length: halve the request until each part fits
                    half = len(pending) // 2
                    log.warning("elasticsearch bulk of %d too large (413); splitting", len(pending))
                    for part in (pending[:half], pending[half:]):
                        sub = self.write(part)
                        outcome.created += sub.created
                        outcome.existed += sub.existed
                        outcome.failed += sub.failed
                        outcome.attempts += sub.attempts
                        outcome.retried_items += sub.retried_items
                    return outcome
                for item in pending:
                    outcome.failed.append((item, last_reason))
                return outcome
            except (TransportError, SerializationError) as err:
                # connection refused/reset, timeout, TLS, a cut response: the bulk may or may not have
                # been applied; `create` makes resending safe either way
                last_reason = f"{type(err).__name__}: {err}"
                log.warning("elasticsearch bulk of %d: %s; retrying", len(pending), last_reason)
                continue
            body = response.body if hasattr(response, "body") else response
            results = body.get("items") if isinstance(body, dict) else None
            if not body.get("errors") and isinstance(results, list) and len(results) == len(pending):
                outcome.created.extend(pending)
                pending = []
                break
            if not isinstance(results, list) or len(results) != len(pending):
                last_reason = (
                    f"bulk response without one result per item ({len(results or [])}/{len(pending)})"
                )
                log.warning("elasticsearch: %s; retrying", last_reason)
                continue
            retry: list[BulkItem] = []
            for item, entry in zip(pending, results, strict=True):
                result = next(iter(entry.values()))
                status = result.get("status", 0)
                if 200 <= status < 300:
                    outcome.created.append(item)
                elif status == 409:
                    outcome.existed.append(item)
                elif status in RETRYABLE_STATUS:
                    last_reason = _item_reason(result)
                    retry.append(item)
                else:
                    outcome.failed.append((item, _item_reason(result)))
            if retry:
                log.warning(
                    "elasticsearch: %d of %d items to retry (%s)", len(retry), len(pending), last_reason
                )
            pending = retry
        for item in pending:
            outcome.failed.append((item, f"gave up after {outcome.attempts} attempts: {last_reason}"))
        return outcome


# ------------------------------------------------------------------ Beam


class _WriteBundles(beam.DoFn):
    """Buffers a bundle's documents and writes them in bulk batches; emits the ids written (created or
    already there) and, on `dead_letter`, what Elasticsearch refused for good."""

    def __init__(self, config: ElasticsearchConfig, kind: str) -> None:
        self.config = config
        self.kind = kind
        self._client: Any = None
        self._writer: BulkWriter | None = None
        self._buffer: list[BulkItem] = []
        self._buffered_bytes = 0

    def __repr__(self) -> str:
        return f"_WriteBundles({self.kind} → {self.config.target})"

    def setup(self) -> None:
        from apache_beam.metrics import Metrics

        self._client = make_client(self.config)
        self._writer = BulkWriter(self._client, self.config)
        namespace = "kubesigma.elasticsearch"
        self._created = Metrics.counter(namespace, f"{self.kind}_created")
        self._existed = Metrics.counter(namespace, f"{self.kind}_already_written")
        self._failed = Metrics.counter(namespace, f"{self.kind}_dead_lettered")
        self._retried = Metrics.counter(namespace, f"{self.kind}_retried_items")

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def start_bundle(self) -> None:
        self._buffer = []
        self._buffered_bytes = 0

    def process(
        self,
        doc: dict[str, Any],
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
    ) -> Iterator[Any]:
        try:
            item = bulk_item(doc, self.config.index_prefix, self.kind, payload=(timestamp, window))
        except (KeyError, TypeError, ValueError) as err:
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                DeadLetter(
                    stage="sink",
                    reason=f"not an indexable {self.kind} document: {err}",
                    source=Source(uri=f"elasticsearch:{self.config.index_prefix}-{self.kind}"),
                    raw=orjson.dumps(doc, default=str),
                ),
            )
            return
        self._buffer.append(item)
        self._buffered_bytes += item.size
        if len(self._buffer) >= self.config.batch_size or self._buffered_bytes >= self.config.batch_bytes:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        # Batched documents may come from other windows than the current element: each output keeps
        # the timestamp and window of its own input.
        for tag, value, (timestamp, window) in self._flush_with_payload():
            wv = WindowedValue(value, timestamp, (window,))
            yield beam.pvalue.TaggedOutput(tag, wv) if tag else wv

    def _flush_with_payload(self) -> Iterator[tuple[str | None, Any, Any]]:
        if not self._buffer:
            return
        items, self._buffer, self._buffered_bytes = self._buffer, [], 0
        assert self._writer is not None
        outcome = self._writer.write(items)
        self._created.inc(len(outcome.created))
        self._existed.inc(len(outcome.existed))
        self._failed.inc(len(outcome.failed))
        self._retried.inc(outcome.retried_items)
        for item in outcome.created + outcome.existed:
            yield None, item.doc_id, item.payload
        for item, reason in outcome.failed:
            yield (
                DEAD_LETTER,
                DeadLetter(
                    stage="sink",
                    reason=reason,
                    source=Source(uri=f"elasticsearch:{item.index}", message_id=item.doc_id),
                    raw=item.source,
                ),
                item.payload,
            )


class WriteToElasticsearch(beam.PTransform):
    """`docs | WriteToElasticsearch(config, kind="alerts")`: JSON dicts (alerts from
    `Alert.to_json_dict()`, or events from `event_document`) into date-named indices, exactly once.

    Returns a tuple-like result: `.written` (ids created or found already written) and `.dead_letter`
    (`DeadLetter`s of documents Elasticsearch refused for good, with its reason)."""

    def __init__(self, config: ElasticsearchConfig, kind: str = "alerts") -> None:
        super().__init__()
        if kind not in es_mapping.KINDS:
            raise ElasticsearchConfigError(f"kind {kind!r}: expected one of {', '.join(es_mapping.KINDS)}")
        self.config = config
        self.kind = kind

    def expand(self, docs: beam.PCollection) -> Any:
        return docs | f"Bulk{self.kind.title()}" >> beam.ParDo(
            _WriteBundles(self.config, self.kind)
        ).with_outputs(DEAD_LETTER, main="written")


class IndexEvents(beam.PTransform):
    """`events | IndexEvents(config)`: normalized `AuditEvent`s (single, or the batches DecodeAudit
    emits) into `<prefix>-events-YYYY.MM.DD` for hunting. Same outputs as WriteToElasticsearch."""

    def __init__(self, config: ElasticsearchConfig, soft_limit: int = EVENT_SOFT_LIMIT) -> None:
        super().__init__()
        self.config = config
        self.soft_limit = soft_limit

    def expand(self, events: beam.PCollection) -> Any:
        soft_limit = self.soft_limit

        def documents(element: AuditEvent | list[AuditEvent]) -> Iterator[dict[str, Any]]:
            for event in element if isinstance(element, list | tuple) else (element,):
                yield event_document(event, soft_limit)

        return (
            events | "EventDocuments" >> beam.FlatMap(documents) | WriteToElasticsearch(self.config, "events")
        )
