"""Kafka settings of a kubesigma job: where the brokers are, how to trust them (TLS verification always on,
a CA file for private CAs, a client certificate for mutual TLS), and SASL credentials from the environment
(`KUBESIGMA_KAFKA_USERNAME`, `KUBESIGMA_KAFKA_PASSWORD`) or from a file named by an option. Credentials are
read where the client is built (the worker's `setup`), never stored in options, pickled DoFns, reprs or logs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

log = logging.getLogger("kubesigma.kafka")

ENV_USERNAME = "KUBESIGMA_KAFKA_USERNAME"
ENV_PASSWORD = "KUBESIGMA_KAFKA_PASSWORD"
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
STARTS = ("earliest", "latest")
DEFAULT_GROUP = "kubesigma"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's own rule for topic names


class KafkaConfigError(ValueError):
    """A Kafka option or credential setting is wrong; the message says which and why."""


@dataclass(frozen=True)
class KafkaConfig:
    """Where and how to read. Holds no secret: only the names of files that hold them."""

    bootstrap: str
    topic: str
    group: str = DEFAULT_GROUP
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_file: str | None = None
    start: str = "earliest"  # where a group without committed offsets starts

    @property
    def brokers(self) -> list[tuple[str, str]]:
        """(host, port) of each bootstrap server."""
        out = []
        for server in self.bootstrap.split(","):
            host, sep, port = server.strip().rpartition(":")
            out.append((host, port) if sep else (port, ""))
        return out

    @property
    def security_protocol(self) -> str:
        if self.sasl_mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    def validate(self) -> KafkaConfig:
        """Fail fast on combinations that cannot work; returns self."""
        for host, port in self.brokers:
            if not host or not port.isdigit():
                raise KafkaConfigError(
                    f"--kafka-bootstrap {self.bootstrap!r}: expected HOST:PORT[,HOST:PORT...]"
                )
        if not _TOPIC.match(self.topic or ""):
            raise KafkaConfigError(f"--kafka-topic {self.topic!r}: not a Kafka topic name")
        if not self.group:
            raise KafkaConfigError("--kafka-group must not be empty")
        if self.start not in STARTS:
            raise KafkaConfigError(f"--kafka-start {self.start!r}: expected one of {', '.join(STARTS)}")
        for flag, path in (
            ("--kafka-ca-file", self.ca_file),
            ("--kafka-cert-file", self.cert_file),
            ("--kafka-key-file", self.key_file),
            ("--kafka-sasl-password-file", self.sasl_password_file),
        ):
            if path and not Path(path).is_file():
                raise KafkaConfigError(f"{flag} {path}: no such file")
        if (self.ca_file or self.cert_file or self.key_file) and not self.tls:
            raise KafkaConfigError("--kafka-ca-file/--kafka-cert-file/--kafka-key-file need --kafka-tls")
        if bool(self.cert_file) != bool(self.key_file):
            raise KafkaConfigError("--kafka-cert-file and --kafka-key-file go together (mutual TLS)")
        if self.sasl_mechanism and self.sasl_mechanism not in SASL_MECHANISMS:
            raise KafkaConfigError(
                f"--kafka-sasl-mechanism {self.sasl_mechanism!r}: expected one of {', '.join(SASL_MECHANISMS)}"
            )
        if (self.sasl_username or self.sasl_password_file) and not self.sasl_mechanism:
            raise KafkaConfigError(
                "--kafka-sasl-username/--kafka-sasl-password-file need --kafka-sasl-mechanism"
            )
        if self.sasl_mechanism and not self.tls and any(h not in _LOOPBACK for h, _ in self.brokers):
            raise KafkaConfigError(
                "refusing to send SASL credentials to Kafka without TLS; add --kafka-tls (and --kafka-ca-file)"
            )
        self.credentials()  # env/file combinations are checked here too, without keeping the values
        return self

    def credentials(self) -> tuple[str, str] | None:
        """SASL user and password, read now (in the worker, or at start-up): file first, then env."""
        if not self.sasl_mechanism:
            return None
        username = self.sasl_username or os.environ.get(ENV_USERNAME)
        password = _read_secret(self.sasl_password_file) or os.environ.get(ENV_PASSWORD)
        if not username:
            raise KafkaConfigError(
                f"--kafka-sasl-mechanism needs a user: --kafka-sasl-username or {ENV_USERNAME}"
            )
        if not password:
            raise KafkaConfigError(
                f"Kafka user {username!r} has no password: set {ENV_PASSWORD} or --kafka-sasl-password-file"
            )
        return username, password

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings of a consumer that commits only what the pipeline asked it to commit."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.start,
            "security.protocol": self.security_protocol,
            "logger": log,
        }
        if self.tls:
            # librdkafka verifies the broker's certificate and host name by default: say so, explicitly.
            config["enable.ssl.certificate.verification"] = True
            config["ssl.endpoint.identification.algorithm"] = "https"
            if self.ca_file:
                config["ssl.ca.location"] = self.ca_file
            if self.cert_file:
                config["ssl.certificate.location"] = self.cert_file
                config["ssl.key.location"] = self.key_file
        credentials = self.credentials()
        if credentials is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"], config["sasl.password"] = credentials
        return config

    @property
    def target(self) -> str:
        """Where we read, for logs and record sources (never credentials)."""
        return f"kafka://{self.topic}"


def _read_secret(path: str | None) -> str | None:
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise KafkaConfigError(f"--kafka-sasl-password-file {path}: cannot read ({err.strerror})") from err
    if not value:
        raise KafkaConfigError(f"--kafka-sasl-password-file {path}: the file is empty")
    return value


class KafkaOptions(PipelineOptions):
    """Kafka options of `kubesigma run --streaming`. Secrets are never option values: see --help."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument(
            "--kafka-bootstrap",
            dest="kafka_bootstrap",
            help="Streaming: read JSON audit records (any format kubesigma knows, keyed or not) from Kafka "
            "brokers HOST:PORT[,HOST:PORT...].",
        )
        parser.add_argument("--kafka-topic", dest="kafka_topic", help="The topic to read (every partition).")
        parser.add_argument(
            "--kafka-group",
            dest="kafka_group",
            default=DEFAULT_GROUP,
            help="Consumer group whose offsets are committed once records are processed (default kubesigma); "
            "a new job resumes from them.",
        )
        parser.add_argument(
            "--kafka-start",
            dest="kafka_start",
            default="earliest",
            help="Where a group without committed offsets starts: earliest (default) or latest.",
        )
        parser.add_argument(
            "--kafka-tls",
            dest="kafka_tls",
            action="store_true",
            default=False,
            help="Connect with TLS; the brokers' certificates and host names are always verified.",
        )
        parser.add_argument(
            "--kafka-ca-file",
            dest="kafka_ca_file",
            help="PEM file of the CA that signed the brokers' certificates.",
        )
        parser.add_argument(
            "--kafka-cert-file", dest="kafka_cert_file", help="PEM client certificate, for mutual TLS."
        )
        parser.add_argument(
            "--kafka-key-file",
            dest="kafka_key_file",
            help="PEM private key of --kafka-cert-file (unencrypted).",
        )
        parser.add_argument(
            "--kafka-sasl-mechanism",
            dest="kafka_sasl_mechanism",
            help=f"SASL authentication: {', '.join(SASL_MECHANISMS)} (with --kafka-tls).",
        )
        parser.add_argument(
            "--kafka-sasl-username",
            dest="kafka_sasl_username",
            help=f"SASL user (else {ENV_USERNAME}); the password comes from {ENV_PASSWORD} or "
            "--kafka-sasl-password-file, never from the command line.",
        )
        parser.add_argument(
            "--kafka-sasl-password-file",
            dest="kafka_sasl_password_file",
            help="File holding the SASL user's password.",
        )
        parser.add_argument(
            "--kafka-max-delay",
            dest="kafka_max_delay",
            default="5s",
            help="Each partition's watermark trails the newest event time read by this much (default 5s); "
            "a partition with nothing new follows the wall clock minus this delay.",
        )
        parser.add_argument(
            "--kafka-replay",
            dest="kafka_replay",
            default="auto",
            help="A job that resumes from the group's committed offsets first re-reads this much before "
            "them (by Kafka timestamp), to rebuild the correlation and suppression state a runner without "
            "checkpoints lost. auto (default): twice the longest stateful window (suppression window; "
            "correlation timespans plus --allowed-lateness); 0: resume exactly at the committed offsets.",
        )
        parser.add_argument(
            "--kafka-max-idle",
            dest="kafka_max_idle",
            default=None,
            help="Finish the job once no partition had anything new for this long (e.g. 30s): every window "
            "closes and the job ends. For replays and tests; default: read forever.",
        )


def config_from_options(options: PipelineOptions) -> KafkaConfig | None:
    """The validated config, or None when --kafka-bootstrap is not given (other Kafka options then fail)."""
    kafka = options.view_as(KafkaOptions)
    if not kafka.kafka_bootstrap:
        for flag, value in (
            ("--kafka-topic", kafka.kafka_topic),
            ("--kafka-tls", kafka.kafka_tls),
            ("--kafka-ca-file", kafka.kafka_ca_file),
            ("--kafka-sasl-mechanism", kafka.kafka_sasl_mechanism),
            ("--kafka-max-idle", kafka.kafka_max_idle),
        ):
            if value:
                raise KafkaConfigError(f"{flag} needs --kafka-bootstrap")
        return None
    if not kafka.kafka_topic:
        raise KafkaConfigError("--kafka-bootstrap needs --kafka-topic")
    return KafkaConfig(
        bootstrap=kafka.kafka_bootstrap,
        topic=kafka.kafka_topic,
        group=kafka.kafka_group,
        tls=bool(kafka.kafka_tls),
        ca_file=kafka.kafka_ca_file,
        cert_file=kafka.kafka_cert_file,
        key_file=kafka.kafka_key_file,
        sasl_mechanism=(kafka.kafka_sasl_mechanism or "").upper() or None,
        sasl_username=kafka.kafka_sasl_username,
        sasl_password_file=kafka.kafka_sasl_password_file,
        start=kafka.kafka_start,
    ).validate()
