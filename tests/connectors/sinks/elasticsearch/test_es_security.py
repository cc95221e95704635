"""Secure by default: TLS verified (a local TLS proxy with a throwaway CA in front of the real cluster),
credentials only from the environment or files, sent to the cluster, never logged, printed or pickled.

The TLS proxy stands in for a TLS-enabled cluster: the test cluster has no x-pack security, so it cannot
serve TLS itself."""

from __future__ import annotations

import logging
import pickle
from dataclasses import replace

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from kubesigma.connectors.sinks.elasticsearch import (
    BulkWriter,
    WriteToElasticsearch,
    _WriteBundles,
    bulk_item,
)
from kubesigma.connectors.sinks.es_config import (
    ElasticsearchConfig,
    ElasticsearchConfigError,
    ElasticsearchUnavailable,
    config_from_options,
    make_client,
)
from kubesigma.connectors.sinks.es_indices import install_templates

SECRET_KEY = "a2V5LWlkOnMzY3IzdC1hcGkta2V5LXZhbHVl"  # never a real key
SECRET_PASSWORD = "hunter2-never-log-me"


@pytest.mark.elasticsearch
def test_tls_with_the_ca_given_by_es_ca_certs_succeeds(config, throwaway_ca, proxy, alerts):
    with proxy(config.url, tls=throwaway_ca.server_context) as p:
        secure = replace(config, url=p.url, ca_certs=str(throwaway_ca.ca_pem))
        lines = install_templates(secure)
        client = make_client(secure)
        outcome = BulkWriter(client, secure).write([bulk_item(alerts[0], config.index_prefix, "alerts")])
        client.close()
    assert "runs Elasticsearch 8." in lines[0]
    assert len(outcome.created) == 1


@pytest.mark.elasticsearch
def test_tls_without_the_ca_fails_with_a_message_naming_es_ca_certs(config, throwaway_ca, proxy):
    with proxy(config.url, tls=throwaway_ca.server_context) as p:
        with pytest.raises(ElasticsearchUnavailable, match=r"could not be verified.*--es-ca-certs"):
            install_templates(replace(config, url=p.url))
        assert p.requests == 0  # nothing was sent over the unverified connection


@pytest.mark.elasticsearch
def test_api_key_from_file_is_sent_but_never_logged_or_pickled(
    config, proxy, alerts, tmp_path, caplog, monkeypatch, run_sink
):
    key_file = tmp_path / "es-api-key"
    key_file.write_text(SECRET_KEY + "\n")
    monkeypatch.delenv("KUBESIGMA_ES_API_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    with proxy(config.url) as p:
        keyed = replace(config, url=p.url, api_key_file=str(key_file))
        install_templates(keyed)
        run_sink(alerts[:5], keyed, tmp_path)
    assert f"ApiKey {SECRET_KEY}" in p.authorizations
    dofn = _WriteBundles(keyed, "alerts")
    for text in (caplog.text, repr(keyed), repr(dofn), repr(WriteToElasticsearch(keyed))):
        assert SECRET_KEY not in text
    assert SECRET_KEY.encode() not in pickle.dumps(dofn)


@pytest.mark.elasticsearch
def test_password_from_the_environment_is_sent_as_basic_auth_and_never_logged(
    config, proxy, caplog, monkeypatch
):
    import base64

    monkeypatch.setenv("KUBESIGMA_ES_USERNAME", "kubesigma-writer")
    monkeypatch.setenv("KUBESIGMA_ES_PASSWORD", SECRET_PASSWORD)
    caplog.set_level(logging.DEBUG)
    with proxy(config.url) as p:
        install_templates(replace(config, url=p.url))
    token = base64.b64encode(f"kubesigma-writer:{SECRET_PASSWORD}".encode()).decode()
    assert f"Basic {token}" in p.authorizations
    assert SECRET_PASSWORD not in caplog.text
    assert token not in caplog.text


def test_no_option_takes_a_secret_value():
    import argparse

    from kubesigma.connectors.sinks.es_config import ElasticsearchOptions

    parser = argparse.ArgumentParser()
    ElasticsearchOptions._add_argparse_args(parser)
    flags = [flag for action in parser._actions for flag in action.option_strings]
    secretish = [f for f in flags if "password" in f or "api-key" in f or "token" in f]
    # Each names where a secret is (a file, a secret manager's reference), never the secret itself.
    assert sorted(secretish) == [
        "--es-api-key-file",
        "--es-api-key-secret",
        "--es-password-file",
        "--es-password-secret",
    ]


def test_url_and_cloud_id_together_are_refused():
    options = PipelineOptions(["--es-url", "https://es.example:9200", "--es-cloud-id", "dep:abc"])
    with pytest.raises(ElasticsearchConfigError, match="exactly one of --es-url and --es-cloud-id"):
        config_from_options(options)


def test_password_file_without_a_user_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBESIGMA_ES_USERNAME", raising=False)
    secret = tmp_path / "pw"
    secret.write_text("x")
    options = PipelineOptions(["--es-url", "https://es.example:9200", "--es-password-file", str(secret)])
    with pytest.raises(
        ElasticsearchConfigError, match="--es-password-file/--es-password-secret need --es-username"
    ):
        config_from_options(options)


def test_credentials_over_plain_http_to_a_remote_host_are_refused(monkeypatch):
    monkeypatch.setenv("KUBESIGMA_ES_API_KEY", SECRET_KEY)
    with pytest.raises(ElasticsearchConfigError, match="refusing to send credentials over plain http") as err:
        ElasticsearchConfig(url="http://es.example:9200").validate()
    assert SECRET_KEY not in str(err.value)


def test_missing_ca_file_is_named_in_the_error():
    with pytest.raises(ElasticsearchConfigError, match=r"--es-ca-certs /nonexistent/ca\.pem: no such file"):
        ElasticsearchConfig(url="https://es.example:9200", ca_certs="/nonexistent/ca.pem").validate()


def test_es_flags_without_a_cluster_are_refused():
    with pytest.raises(ElasticsearchConfigError, match="--es-index-events needs --es-url or --es-cloud-id"):
        config_from_options(PipelineOptions(["--es-index-events"]))


def test_no_es_options_means_no_elasticsearch_output():
    assert config_from_options(PipelineOptions([])) is None
