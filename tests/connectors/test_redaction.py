"""Credentials never leave the pipeline, in any output, while the event itself is left as it came."""

from __future__ import annotations

import copy
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesigma.connectors.model import DeadLetter, Source
from kubesigma.connectors.redact import REDACTED, _redact, redact_document, redact_raw
from support.audit_records import audit_event

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXZhbHVl"


def secret_create() -> dict:
    """A Secret created, logged at RequestResponse level: its values in the request, and in the response
    a list of Secrets (what a list would answer)."""
    return audit_event(
        verb="create",
        name="db",
        request_object={
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "db", "annotations": {"note": "keep me"}},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"token": "plain"},
        },
        response_object={"kind": "SecretList", "items": [{"kind": "Secret", "data": {"k": "dg=="}}]},
    )


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


@pytest.mark.parametrize("key", ["token", "tokeN", "TOKEN"])  # the fuzzer found "tokeN" kept
def test_token_request_status_token_is_redacted(key: str) -> None:
    event = {
        "responseObject": {"kind": "TokenRequest", "status": {key: "opaque-1", "expirationTimestamp": "x"}}
    }
    out = redact_document(event)
    assert out["responseObject"]["status"] == {key: REDACTED, "expirationTimestamp": "x"}


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


@pytest.mark.parametrize(
    "cut",
    [
        # an array of keys under a kubeconfig credential (the fuzzer found this one leaking), nested too
        b'{"users":[{"user":{"client-key-data":["S3CR3T-1","S3CR3T-1",["S3CR3T-1"]],"x":"keep"}}],"n":1e9999',
        b'{"privateKey":{"k":"S3CR3T-1 ] }"},"x":"keep"  garbage',  # brackets inside a string
        b'{"token":"S3CR3T-1\\"S3CR3T-1","x":"keep"} garbage',  # an escaped quote inside the value
        b'{"Password": 12345678, "x":"keep"} garbage',  # any key of CREDENTIAL_KEYS, any value
        b'{"sessionToken":["S3CR3T-1"',  # cut inside the value
        b'"{\\"refresh-token\\":\\"S3CR3T-1\\",\\"x\\":\\"keep\\"',  # JSON inside a string
    ],
)
def test_credential_members_of_bytes_that_do_not_parse_are_redacted_whatever_their_value(cut: bytes) -> None:
    out = redact_raw(cut)
    assert b"S3CR3T-1" not in out and b"12345678" not in out
    assert REDACTED.encode() in out
    assert b"keep" in out or b"keep" not in cut  # only the credential's value goes


def test_dead_letters_carry_redacted_raw_records() -> None:
    dead = DeadLetter("decode", "why", Source("f", line=3), orjson.dumps(secret_create()))
    doc = dead.as_dict()
    assert "aHVudGVyMg==" not in doc["raw"]
    assert doc["source"] == {"uri": "f", "line": 3}


# Values the full walk changes, and look-alikes it leaves: the quick check must send every one of the
# former to the walk, and may pass the latter through unchanged.
_KEYS = st.sampled_from(
    ["token", "Token", "TOKEN", "password", "client-key-data", "privateKey", "data", "stringData", "kind",
     "status", "name", "tokens", "xtoken", "to\u212aen", "passwörd", "metadata", "items"]
)  # fmt: skip
_STRINGS = st.sampled_from(
    ["", "Secret", "TokenRequest", "secret", "Bearer abcdefghijkl", "basic QWxhZGRpbjpvcGVu", "eyJhbGciOi.eyJzdWIiOi.sig",
     "hello", "ns1", "bearer", "ünïcode", "system:serviceaccount:kube-system:x",
     "bas\u0131c QWxhZGRpbjpvcGVu", "BAS\u0130C QWxhZGRpbjpvcGVu", "ba\u017fic QWxhZGRpbjpvcGVu", "bearer\u00a0abcdefghijkl"]
)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=6))
def test_quick_check_redacts_exactly_what_the_full_walk_does(doc: dict) -> None:
    original = copy.deepcopy(doc)
    assert redact_document(doc) == _redact(doc)
    assert doc == original


def test_a_clean_document_is_returned_as_it_is_and_a_dirty_one_copied() -> None:
    clean = {"verb": "get", "objectRef": {"resource": "configmaps", "name": "token-cfg"}}
    assert redact_document(clean) is clean
    dirty = {"verb": "create", "requestObject": {"kind": "Secret", "data": {"k": "djE="}}}
    assert redact_document(dirty) is not dirty
    assert redact_document(dirty)["requestObject"]["data"] == {"k": REDACTED}
    odd_kind = {"kind": ["Secret"], "data": {"k": "v"}}  # once raised TypeError (unhashable kind)
    assert redact_document(odd_kind) == odd_kind
    huge = {"n": 2**70, "token": "abc"}  # not JSON-serializable by orjson: the walk still redacts
    assert redact_document(huge)["token"] == REDACTED


@settings(max_examples=200, deadline=None)
@given(st.lists(_JSON, min_size=33, max_size=48), _KEYS, _STRINGS)
def test_long_lists_and_texts_are_redacted_as_walked_item_by_item(items: list, key: str, text: str) -> None:
    # A long list is first searched whole and a long text by RE2 (a fuzzed 150,000 items, a megabyte):
    # what comes out is what the plain walk, item by item and regex by regex, gives.
    doc = {key: items, "nested": [{"kind": "Secret", "data": {"k": "v"}}, *items], "text": "x" * 5000 + text}
    with (
        mock.patch("kubesigma.connectors.redact._LONG_LIST", 10**9),
        mock.patch("kubesigma.connectors.redact._LONG_TEXT", 10**9),
    ):
        walked = _redact(doc)
    assert _redact(doc) == walked
    assert redact_document(doc) == walked


def test_a_bearer_token_at_the_end_of_a_long_list_or_text_is_redacted() -> None:
    out = redact_document(
        {"args": ["x"] * 50_000 + ["Bearer abcdefghijklmnop123"], "note": "é" * 9000 + " " + JWT}
    )
    assert out["args"][-1] == f"Bearer {REDACTED}"
    assert out["note"] == "é" * 9000 + " " + REDACTED
