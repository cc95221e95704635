"""Fixtures for the Elasticsearch tests: the real cluster of `make es-up`, real audit Events as alerts.

Integration tests need the cluster at KUBESIGMA_ES_URL (default http://127.0.0.1:9200). Locally they
skip with the reason when it is not running; under CI (CI=true) they fail, because CI starts it.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import pickle
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from kubesigma.connectors.model import DeadLetter
from kubesigma.connectors.model.alert import (
    Alert,
    ClusterFields,
    EventFields,
    KubesigmaFields,
    OrchestratorFields,
    RuleFields,
    SourceFields,
    UserFields,
    alert_id,
)
from kubesigma.connectors.sinks.elasticsearch import WriteToElasticsearch
from kubesigma.connectors.sinks.es_config import ElasticsearchConfig
from support.es_cluster import drop_prefix, es_url_or_skip, ids_in
from support.falco_traces import falco_events
from support.paths import FALCO_TRACES


def audit_events() -> list[dict[str, Any]]:
    """The real Kubernetes audit Events of Falco's regression traces (dotted annotation keys,
    request and response objects of every kind)."""
    if not FALCO_TRACES.is_dir():
        pytest.fail(f"third-party datasets not found at {FALCO_TRACES}")
    return falco_events()


def make_alert(event: dict[str, Any], rule: str = "kst-rule", *, day_offset: int = 0) -> dict[str, Any]:
    """An alert document as the pipeline writes it: the Alert model's JSON with the raw Event under
    kubernetes.audit. `day_offset` moves it to another day (another index)."""
    stamp = event.get("stageTimestamp") or event.get("requestReceivedTimestamp")
    if day_offset:
        moved = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(days=day_offset)
        stamp = moved.isoformat().replace("+00:00", "Z")
    user = event.get("user", {}).get("username")
    ips = event.get("sourceIPs") or [None]
    alert = Alert(
        timestamp=stamp,
        event=EventFields(id=event["auditID"], severity=73, action=event.get("verb"), provider="kubernetes"),
        rule=RuleFields(id=rule, name=f"Test rule {rule}", level="high", tags=["attack.t1609"]),
        user=UserFields(name=user),
        source=SourceFields(ip=ips[0]),
        orchestrator=OrchestratorFields(
            cluster=ClusterFields(name="minikube"),
            namespace=(event.get("objectRef") or {}).get("namespace"),
        ),
        kubernetes={"audit": event},
        kubesigma=KubesigmaFields(
            alert_id=alert_id(rule, event["auditID"], event.get("stage", ""), str(day_offset)),
            logsource="kubernetes/audit",
        ),
    )
    return alert.to_json_dict()


@pytest.fixture(name="ids_in")
def ids_in_fixture() -> Any:
    return ids_in


@pytest.fixture(name="make_alert")
def make_alert_fixture() -> Any:
    return make_alert


@pytest.fixture(scope="session")
def es_url() -> str:
    return es_url_or_skip()


@pytest.fixture
def es(es_url: str) -> Iterator[Any]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def prefix(es: Any) -> Iterator[str]:
    """A fresh index prefix per test; its indices and templates are deleted afterwards."""
    name = f"kst-{uuid.uuid4().hex[:10]}"
    yield name
    drop_prefix(es, name)


@pytest.fixture
def config(es_url: str, prefix: str) -> ElasticsearchConfig:
    return ElasticsearchConfig(
        url=es_url, index_prefix=prefix, request_timeout=10, backoff_initial=0.05, backoff_max=0.5
    )


@pytest.fixture(scope="session")
def alerts() -> list[dict[str, Any]]:
    """~100 alerts over several days: every real Event under two rules, half moved a day later."""
    events = audit_events()
    docs = []
    for i, event in enumerate(events):
        for rule in ("kst-rule-a", "kst-rule-b"):
            docs.append(make_alert(event, rule, day_offset=i % 2))
    return docs


# ---------------------------------------------------------------- local proxies in front of the real cluster


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        proxy = self.server.proxy
        with proxy.lock:
            proxy.requests += 1
            if self.headers.get("Authorization"):
                proxy.authorizations.append(self.headers["Authorization"])
            fault = proxy.next_fault(self.path) if "_bulk" in self.path else "pass"
            proxy.injected[fault] = proxy.injected.get(fault, 0) + 1
        if fault == "413" and body.count(b"\n") > 2:  # more than one operation
            self._reply(413, b"")
            with proxy.lock:
                proxy.faults.insert(0, "413")  # keep refusing until single operations arrive
        elif fault in ("429", "503"):
            reason = "es_rejected_execution_exception" if fault == "429" else "unavailable_shards_exception"
            self._reply(
                int(fault),
                json.dumps({"error": {"type": reason, "reason": "injected"}, "status": int(fault)}).encode(),
            )
        elif fault == "reset":
            self._reset()
        elif fault == "stall":
            time.sleep(proxy.stall_seconds)
            self._reset()
        elif fault == "reset_after_apply":
            self._forward(body)
            self._reset()
        elif fault == "partial":
            self._partial(body)
        else:
            status, payload = self._forward(body)
            self._reply(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, payload

    def _partial(self, body: bytes) -> None:
        """Withholds every third operation of a bulk and answers for it as Elasticsearch does when its
        write queue is full (item status 429); the others really reach the cluster."""
        lines = body.splitlines()
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
        kept = [p for i, p in enumerate(pairs) if i % 3 != 1]
        items: list[Any] = []
        upstream_items: list[Any] = []
        if kept:
            status, payload = self._forward(b"\n".join(b"\n".join(p) for p in kept) + b"\n")
            if status != 200:
                self._reply(status, payload)
                return
            upstream_items = json.loads(payload).get("items", [])
        it = iter(upstream_items)
        for i, _ in enumerate(pairs):
            if i % 3 == 1:
                items.append(
                    {
                        "create": {
                            "status": 429,
                            "error": {"type": "es_rejected_execution_exception", "reason": "injected"},
                        }
                    }
                )
            else:
                items.append(next(it))
        self._reply(200, json.dumps({"errors": True, "items": items}).encode())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reset(self) -> None:
        # RST instead of FIN: what a crashing load balancer or node does
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: Proxy


class Proxy:
    """An HTTP(S) proxy on 127.0.0.1 in front of the real cluster. It injects faults into `_bulk`
    requests from `faults` (a list consumed in order, then passes everything through), and records
    the Authorization headers it saw. With `tls`, it terminates TLS with the given certificate."""

    def __init__(
        self,
        upstream: str,
        faults: list[str] | None = None,
        *,
        stall_seconds: float = 0.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 9200)
        self.faults = list(faults or [])
        self.stall_seconds = stall_seconds
        self.lock = threading.Lock()
        self.requests = 0
        self.injected: dict[str, int] = {}
        self.authorizations: list[str] = []
        self.server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self.server.proxy = self
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def next_fault(self, path: str) -> str:
        return self.faults.pop(0) if self.faults else "pass"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(name="proxy")
def proxy_factory() -> Any:
    """`with proxy(upstream, faults, ...) as p:` — see Proxy."""
    return Proxy


@dataclass
class ThrowawayCA:
    ca_pem: Path
    server_context: ssl.SSLContext


@pytest.fixture
def throwaway_ca(tmp_path: Path) -> ThrowawayCA:
    """A CA made for this test only, and a certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubesigma test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "server.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = tmp_path / "server.key"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_pem)
    return ThrowawayCA(ca_pem, context)


# ---------------------------------------------------------------- the sink in a real Beam pipeline


class AppendTo(beam.DoFn):
    """Appends each element, pickled, to a file: FnApiRunner pickles DoFns, so lists would be copies."""

    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, value: Any) -> None:
        with open(self.path, "ab") as out:
            pickle.dump(value, out)


def _read_all(path: Path) -> list:
    values = []
    if path.exists():
        with path.open("rb") as f:
            while True:
                try:
                    values.append(pickle.load(f))
                except EOFError:
                    return values
    return values


def run_sink(
    docs: list[dict[str, Any]], config: ElasticsearchConfig, workdir: Path, kind: str = "alerts"
) -> tuple[list[str], list[DeadLetter]]:
    """Runs a real Beam pipeline (FnApiRunner) writing `docs`; returns (written ids, dead letters)."""
    token = uuid.uuid4().hex
    written, dead = workdir / f"written-{token}", workdir / f"dead-{token}"
    with beam.Pipeline(runner=FnApiRunner()) as p:
        result = p | beam.Create(docs, reshuffle=False) | WriteToElasticsearch(config, kind)
        _ = result.written | "ids" >> beam.ParDo(AppendTo(str(written)))
        _ = result.dead_letter | "dead" >> beam.ParDo(AppendTo(str(dead)))
    return _read_all(written), _read_all(dead)


@pytest.fixture(name="run_sink")
def run_sink_fixture() -> Any:
    return run_sink


@pytest.fixture(scope="session", name="falco_events")
def falco_events_fixture() -> list[dict[str, Any]]:
    """The real audit Events of Falco's regression traces."""
    return audit_events()
