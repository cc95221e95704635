"""kubesigma's Kibana saved objects into a Kibana, through its saved objects API: the objects are read
back first (`_bulk_get`) and only the missing or different ones are imported (`_import?overwrite=true`),
so a second run changes nothing. TLS is verified; the API key comes from `KUBESIGMA_KIBANA_API_KEY` or a
file, never from the command line.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubesigma.connectors.sinks.es_setup import CREATED, UNCHANGED, UPDATED, Change, contains
from kubesigma.connectors.sinks.kibana import saved_objects

ENV_API_KEY = "KUBESIGMA_KIBANA_API_KEY"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class KibanaError(RuntimeError):
    """Kibana could not be reached or refused a request; the message says which and why."""


@dataclass(frozen=True)
class KibanaConfig:
    url: str
    space: str | None = None
    ca_certs: str | None = None
    api_key_file: str | None = None
    timeout: float = 30.0

    def api_key(self) -> str | None:
        if self.api_key_file:
            try:
                key = Path(self.api_key_file).read_text(encoding="utf-8").strip()
            except OSError as err:
                raise KibanaError(
                    f"--kibana-api-key-file {self.api_key_file}: cannot read ({err.strerror})"
                ) from err
            if not key:
                raise KibanaError(f"--kibana-api-key-file {self.api_key_file}: the file is empty")
            return key
        return os.environ.get(ENV_API_KEY) or None

    def validate(self) -> KibanaConfig:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise KibanaError(f"--kibana-url {self.url!r}: expected http(s)://host[:port]")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK and self.api_key():
            raise KibanaError(f"--kibana-url {self.url}: an API key is only sent over https (or to loopback)")
        return self

    def endpoint(self, path: str) -> str:
        space = f"/s/{self.space}" if self.space else ""
        return f"{self.url.rstrip('/')}{space}/api/saved_objects/{path}"


def _request(config: KibanaConfig, path: str, body: bytes, content_type: str) -> Any:
    headers = {"kbn-xsrf": "kubesigma", "Content-Type": content_type}
    key = config.api_key()
    if key:
        headers["Authorization"] = f"ApiKey {key}"
    request = urllib.request.Request(config.endpoint(path), data=body, headers=headers, method="POST")
    context = ssl.create_default_context(cafile=config.ca_certs)  # verification stays on
    try:
        with urllib.request.urlopen(request, timeout=config.timeout, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")[:300]
        raise KibanaError(f"Kibana at {config.url} answered {err.code} to {path}: {detail}") from err
    except (urllib.error.URLError, OSError) as err:
        raise KibanaError(f"cannot reach Kibana at {config.url}: {getattr(err, 'reason', err)}") from err


def _same(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """Kibana migrates objects on import and adds attributes of its own: ours must all be there, as given."""
    refs = sorted((r["type"], r["id"], r["name"]) for r in want.get("references", []))
    have_refs = sorted((r["type"], r["id"], r["name"]) for r in have.get("references", []))
    return contains(have.get("attributes", {}), want["attributes"]) and refs == have_refs


def import_saved_objects(config: KibanaConfig, prefix: str, *, apply: bool = True) -> list[Change]:
    """Import kubesigma's saved objects where Kibana lacks them or holds another version."""
    wanted = saved_objects(prefix)
    asked = json.dumps([{"type": o["type"], "id": o["id"]} for o in wanted]).encode()
    found = _request(config, "_bulk_get", asked, "application/json")["saved_objects"]
    current = {(o["type"], o["id"]): o for o in found if "error" not in o}
    changes = []
    stale = []
    for obj in wanted:
        have = current.get((obj["type"], obj["id"]))
        name = f"{obj['type']} {obj['id']}"
        if have is not None and _same(have, obj):
            changes.append(Change("saved object", name, UNCHANGED))
            continue
        changes.append(Change("saved object", name, CREATED if have is None else UPDATED))
        stale.append(obj)
    if apply and stale:
        boundary = uuid.uuid4().hex
        ndjson = "".join(json.dumps(o, sort_keys=True) + "\n" for o in stale)
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="kubesigma.ndjson"\r\n'
            f"Content-Type: application/ndjson\r\n\r\n{ndjson}\r\n--{boundary}--\r\n"
        ).encode()
        result = _request(config, "_import?overwrite=true", body, f"multipart/form-data; boundary={boundary}")
        if not result.get("success"):
            errors = "; ".join(
                f"{e.get('type')} {e.get('id')}: {e.get('error')}" for e in result.get("errors", [])
            )
            raise KibanaError(f"Kibana at {config.url} refused the import: {errors or result}")
    return changes
