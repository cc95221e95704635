"""GKE backfill through google-cloud-logging against a local HTTP endpoint.

No Cloud Logging emulator exists, so a small HTTP server stands in for the Logging API's
`POST /v2/entries:list` (the real client library, over HTTP, with anonymous credentials); it serves
the real GKE samples page by page and records what the client asked for.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as cloud_logging

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.sources.backfill import BackfillError, gke_filter
from kubesigma.connectors.sources.files import read_file
from kubesigma.pipeline.commands.backfill import parse_time, run_backfill_gke
from support.paths import FORMAT_SAMPLES

SAMPLES = FORMAT_SAMPLES / "gke-cloud-audit-logentries.jsonl"
PAGE = 2


class LoggingApi(ThreadingHTTPServer):
    """Serves the samples in pages of PAGE entries; keeps every request body."""

    def __init__(self) -> None:
        self.entries = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
        self.requests: list[tuple[str, dict]] = []

        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                api.requests.append((self.path, body))
                start = int(body.get("pageToken") or 0)
                answer: dict = {"entries": api.entries[start : start + PAGE]}
                if start + PAGE < len(api.entries):
                    answer["nextPageToken"] = str(start + PAGE)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def logging_api():
    server = LoggingApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(logging_api):
    return cloud_logging.Client(
        project="elastic-siem",
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": f"http://127.0.0.1:{logging_api.server_port}"},
    )


def _run(client, tmp_path, until="2026-01-01T00:00:00Z"):
    out = tmp_path / "gke.jsonl"
    status = run_backfill_gke(
        "elastic-siem", "analysis-cluster", "2020-01-01T00:00:00Z", until, str(out), client=client
    )
    return status, out


def test_backfill_sends_cluster_and_time_constraints_in_the_filter(client, logging_api, tmp_path):
    _run(client, tmp_path)
    path, body = logging_api.requests[0]
    assert path.startswith("/v2/entries:list")
    assert body["resourceNames"] == ["projects/elastic-siem"]
    query = body["filter"]
    assert 'resource.labels.cluster_name="analysis-cluster"' in query
    assert 'timestamp>="2020-01-01T00:00:00.000000Z"' in query
    assert 'timestamp<"2026-01-01T00:00:00.000000Z"' in query
    assert '"k8s_cluster"' in query and "cloudaudit.googleapis.com" in query


def test_backfill_asks_oldest_first(client, logging_api, tmp_path):
    _run(client, tmp_path)
    assert logging_api.requests[0][1]["orderBy"] == "timestamp asc"


def test_backfill_follows_every_page(client, logging_api, tmp_path):
    status, out = _run(client, tmp_path)
    assert status == 0
    assert [body.get("pageToken") for _, body in logging_api.requests] == [None, "2", "4"]
    assert len(out.read_text().splitlines()) == 6


def test_backfilled_file_gives_the_six_samples_as_events(client, tmp_path):
    _, out = _run(client, tmp_path)
    outcomes = [o for record in read_file(str(out)) for o in decode_record(record)]
    assert Counter(type(o).__name__ for o in outcomes) == {"AuditEvent": 6}
    assert {o.cloud.provider for o in outcomes} == {"gcp"}


def test_backfilled_entries_keep_receive_timestamp(client, tmp_path):
    _, out = _run(client, tmp_path)
    first = json.loads(out.read_text().splitlines()[0])
    assert first["receiveTimestamp"].startswith("2020-08-05T21:07:32.157698")


def test_open_window_sends_no_upper_bound(client, logging_api, tmp_path):
    _run(client, tmp_path, until=None)
    assert "timestamp<" not in logging_api.requests[0][1]["filter"]


def test_cluster_name_that_could_break_the_filter_is_refused():
    since = parse_time("2020-01-01T00:00:00Z", "since")
    with pytest.raises(BackfillError, match="not a GKE cluster name"):
        gke_filter("elastic-siem", 'x" OR "1', since, None)


def test_until_before_since_is_refused_with_exit_status_2(client, tmp_path, capsys):
    status, _ = _run(client, tmp_path, until="2019-01-01T00:00:00Z")
    assert status == 2
    assert "is not after --since" in capsys.readouterr().err
