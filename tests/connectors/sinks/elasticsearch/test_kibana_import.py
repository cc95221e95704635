"""`kubesigma kibana import` run twice: the first run imports kubesigma's saved objects, the second imports
nothing and exits 0, `--check` reports a hand-edited object without changing it.

No Kibana can run here (it is not on the registries this project reaches), so the Kibana is a test double:
a small HTTP server on 127.0.0.1 answering the two saved-objects endpoints the command calls
(`_bulk_get`, `_import?overwrite=true`) the way Kibana 8 does, including the attributes and migration
fields Kibana adds on import. What is under test is the command's compare-then-import logic and its output.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kubesigma.connectors.sinks.kibana import saved_objects
from kubesigma.pipeline.cli import main


class FakeKibana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), KibanaHandler)
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.imports: list[list[str]] = []
        self.authorizations: set[str | None] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class KibanaHandler(BaseHTTPRequestHandler):
    server: FakeKibana

    def log_message(self, *args: Any) -> None:  # quiet test output
        pass

    def _answer(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.server.authorizations.add(self.headers.get("Authorization"))
        if self.headers.get("kbn-xsrf") is None:
            return self._answer(400, {"message": "Request must contain a kbn-xsrf header."})
        if self.path == "/api/saved_objects/_bulk_get":
            found = []
            for ask in json.loads(body):
                obj = self.server.objects.get((ask["type"], ask["id"]))
                found.append(obj or {**ask, "error": {"statusCode": 404, "message": "Not Found"}})
            return self._answer(200, {"saved_objects": found})
        if self.path == "/api/saved_objects/_import?overwrite=true":
            assert self.headers["Content-Type"].startswith("multipart/form-data; boundary=")
            lines = [line for line in body.splitlines() if line.startswith("{")]
            imported = [json.loads(line) for line in lines]
            for obj in imported:
                # Kibana migrates what it imports: extra attributes and version fields of its own.
                stored = {**obj, "attributes": {**obj["attributes"], "version": 1}}
                stored |= {"coreMigrationVersion": "8.8.0", "updated_at": "2026-12-07T00:00:00Z"}
                self.server.objects[(obj["type"], obj["id"])] = stored
            self.server.imports.append([f"{o['type']} {o['id']}" for o in imported])
            return self._answer(200, {"success": True, "successCount": len(imported)})
        return self._answer(404, {"message": f"no route {self.path}"})


@pytest.fixture
def kibana() -> Iterator[FakeKibana]:
    server = FakeKibana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def kibana_import(capsys: pytest.CaptureFixture[str], url: str, *more: str) -> tuple[int, list[str]]:
    code = main(["kibana", "import", f"--kibana-url={url}", "--es-index-prefix=acme", *more])
    return code, capsys.readouterr().out.splitlines()


def test_a_second_import_changes_nothing(kibana, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUBESIGMA_KIBANA_API_KEY", "a2V5OnNlY3JldA==")
    wanted = saved_objects("acme")
    code, first = kibana_import(capsys, kibana.url)
    assert code == 0
    assert first[-1] == f"kibana: {len(wanted)} of {len(wanted)} saved objects imported"
    assert len(kibana.imports) == 1 and len(kibana.imports[0]) == len(wanted)
    stored = json.dumps(list(kibana.objects.values()), sort_keys=True)

    code, second = kibana_import(capsys, kibana.url)
    assert code == 0
    assert second[-1] == f"kibana: 0 of {len(wanted)} saved objects imported"
    assert all(line.endswith(" unchanged") for line in second[:-1])
    assert len(kibana.imports) == 1
    assert json.dumps(list(kibana.objects.values()), sort_keys=True) == stored
    # The key goes in the header, never to the output.
    assert kibana.authorizations == {"ApiKey a2V5OnNlY3JldA=="}
    assert not any("a2V5" in line for line in first + second)


def test_check_reports_a_hand_edited_object_and_changes_nothing(kibana, capsys) -> None:
    assert kibana_import(capsys, kibana.url)[0] == 0
    edited = next(key for key in kibana.objects if key[0] == "search")
    kibana.objects[edited]["attributes"]["title"] = "renamed by hand"

    code, out = kibana_import(capsys, kibana.url, "--check")
    assert code == 1
    assert f"kibana: saved object {edited[0]} {edited[1]} would be updated" in out
    assert out[-1] == f"kibana: 1 of {len(kibana.objects)} saved objects differ"
    assert kibana.objects[edited]["attributes"]["title"] == "renamed by hand"
    assert len(kibana.imports) == 1

    code, out = kibana_import(capsys, kibana.url)
    assert code == 0 and kibana.imports[-1] == [f"{edited[0]} {edited[1]}"]
    assert kibana_import(capsys, kibana.url, "--check")[0] == 0
