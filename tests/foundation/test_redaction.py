"""Credentials never leave the pipeline, in any output, while the event itself is left as it came."""

from __future__ import annotations

import copy

import orjson

from kubesigma.connectors.event import DeadLetter, Source
from kubesigma.connectors.redact import REDACTED, redact_document, redact_raw

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXZhbHVl"


def secret_create() -> dict:
    return {
        "kind": "Event",
        "auditID": "a",
        "verb": "create",
        "requestObject": {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "db", "annotations": {"note": "keep me"}},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"token": "plain"},
        },
        "responseObject": {"kind": "SecretList", "items": [{"kind": "Secret", "data": {"k": "dg=="}}]},
    }


def test_secret_values_are_redacted_but_their_keys_kept() -> None:
    out = redact_document(secret_create())
    assert out["requestObject"]["data"] == {"password": REDACTED}
    assert out["requestObject"]["stringData"] == {"token": REDACTED}
    assert out["responseObject"]["items"][0]["data"] == {"k": REDACTED}
    assert out["requestObject"]["metadata"]["annotations"]["note"] == "keep me"


def test_redaction_leaves_the_original_event_untouched() -> None:
    event = secret_create()
    before = copy.deepcopy(event)
    redact_document(event)
    assert event == before


def test_token_request_status_token_is_redacted() -> None:
    event = {"responseObject": {"kind": "TokenRequest", "status": {"token": JWT, "expirationTimestamp": "x"}}}
    out = redact_document(event)
    assert out["responseObject"]["status"] == {"token": REDACTED, "expirationTimestamp": "x"}


def test_kubeconfig_credentials_are_redacted() -> None:
    config = {
        "kind": "ConfigMap",
        "data": {"kubeconfig": f"users:\n- name: admin\n  user:\n    token: {JWT}\n"},
        "users": [{"name": "a", "user": {"client-key-data": "LS0tLS1CRUdJTi", "token": "abc"}}],
    }
    out = redact_document(config)
    assert JWT not in orjson.dumps(out).decode()
    assert out["users"][0]["user"] == {"client-key-data": REDACTED, "token": REDACTED}


def test_bearer_tokens_inside_strings_are_redacted() -> None:
    out = redact_document({"requestURI": "/x", "headers": ["Authorization: Bearer abcdefghijklmnop123"]})
    assert out["headers"] == [f"Authorization: Bearer {REDACTED}"]


def test_raw_bytes_that_do_not_parse_are_redacted_by_pattern() -> None:
    cut = (
        b'{"kind":"Event","requestObject":{"kind":"Secret","data":{"password":"aHVudGVyMg=="},"x":"'
        + JWT.encode()
    )
    out = redact_raw(cut)
    assert b"aHVudGVyMg==" not in out
    assert JWT.encode() not in out


def test_dead_letters_carry_redacted_raw_records() -> None:
    dead = DeadLetter("decode", "why", Source("f", line=3), orjson.dumps(secret_create()))
    doc = dead.as_dict()
    assert "aHVudGVyMg==" not in doc["raw"]
    assert doc["source"] == {"uri": "f", "line": 3}
