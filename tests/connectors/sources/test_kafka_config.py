"""Kafka settings: TLS verification always on, SASL credentials only from files or the environment, and
combinations that cannot work refused with a message naming the option (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesigma.connectors.sources.kafka_config import (
    ENV_PASSWORD,
    ENV_USERNAME,
    KafkaConfig,
    KafkaConfigError,
)


def config(**changes: object) -> KafkaConfig:
    return KafkaConfig(**{"bootstrap": "kafka-0.example:9093", "topic": "k8s-audit", **changes})  # type: ignore[arg-type]


def test_tls_verifies_the_brokers_certificate_and_host_name(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = config(tls=True, ca_file=str(ca)).validate().client_config()
    assert settings["security.protocol"] == "SSL"
    assert settings["enable.ssl.certificate.verification"] is True
    assert settings["ssl.endpoint.identification.algorithm"] == "https"
    assert settings["ssl.ca.location"] == str(ca)


def test_offsets_are_never_committed_by_the_client_on_its_own() -> None:
    settings = config().validate().client_config()
    assert settings["enable.auto.commit"] is False
    assert settings["enable.auto.offset.store"] is False


def test_the_sasl_password_comes_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = (
        config(
            tls=True, sasl_mechanism="SCRAM-SHA-512", sasl_username="audit", sasl_password_file=str(secret)
        )
        .validate()
        .client_config()
    )
    assert settings["security.protocol"] == "SASL_SSL"
    assert (settings["sasl.username"], settings["sasl.password"]) == ("audit", "s3cret")


def test_sasl_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_USERNAME, "audit")
    monkeypatch.setenv(ENV_PASSWORD, "from-env")
    settings = config(tls=True, sasl_mechanism="PLAIN").validate().client_config()
    assert (settings["sasl.username"], settings["sasl.password"]) == ("audit", "from-env")


def test_the_config_holds_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_USERNAME, "audit")
    monkeypatch.setenv(ENV_PASSWORD, "never-pickled")
    settings = config(tls=True, sasl_mechanism="PLAIN").validate()
    assert "never-pickled" not in repr(settings)
    assert b"never-pickled" not in __import__("pickle").dumps(settings)


def test_sasl_without_tls_to_a_remote_broker_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_USERNAME, "audit")
    monkeypatch.setenv(ENV_PASSWORD, "pw")
    with pytest.raises(KafkaConfigError, match="without TLS"):
        config(sasl_mechanism="PLAIN").validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bootstrap": "kafka-0"}, "expected HOST:PORT"),
        ({"topic": "no spaces"}, "not a Kafka topic name"),
        ({"start": "middle"}, "--kafka-start 'middle'"),
        ({"sasl_mechanism": "GSSAPI", "tls": True}, "--kafka-sasl-mechanism 'GSSAPI'"),
        ({"sasl_mechanism": "PLAIN", "tls": True}, "needs a user"),
        ({"ca_file": "/no/such/ca.pem", "tls": True}, "--kafka-ca-file /no/such/ca.pem: no such file"),
        ({"sasl_username": "audit"}, "need --kafka-sasl-mechanism"),
    ],
)
def test_settings_that_cannot_work_fail_fast_naming_the_option(changes: dict, message: str) -> None:
    with pytest.raises(KafkaConfigError, match=message):
        config(**changes).validate()


def test_a_user_without_a_password_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    with pytest.raises(KafkaConfigError, match="has no password"):
        config(tls=True, sasl_mechanism="PLAIN", sasl_username="audit").validate()
