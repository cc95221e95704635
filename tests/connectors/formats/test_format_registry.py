"""The format registry walks connectors/formats/ and imports every public module there: each of them
is a wire format, and the detection job imports no fixture or generator."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

from kubesigma.connectors import formats


def test_every_module_the_registry_walks_registers_a_format() -> None:
    walked = {
        f"{formats.__name__}.{m.name}"
        for m in pkgutil.iter_modules(formats.__path__)
        if not m.name.startswith("_")
    }
    registering = {f.decode.__module__ for f in formats.formats()}
    assert walked and walked <= registering, walked - registering


def test_the_detection_job_imports_no_delivery_wrapper_or_simulated_cluster() -> None:
    """`kubesigma run` with every format loaded: the wrappers of connectors/delivery.py and the demo's
    simulated cluster stay out of the process (a fresh interpreter: this one has imported them)."""
    code = (
        "import sys\n"
        "import kubesigma.pipeline.run\n"
        "from kubesigma.connectors.formats import formats\n"
        "formats()\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('kubesigma'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(proc.stdout.split())
    assert "kubesigma.connectors.formats.kubernetes" in loaded  # the walk ran
    assert "kubesigma.pipeline.run" in loaded
    fixtures = {
        m
        for m in loaded
        if m.startswith(("kubesigma.connectors.delivery", "kubesigma.connectors.simulated_cluster"))
    }
    assert fixtures == set()


def test_threads_decoding_the_first_records_of_a_fresh_worker_all_find_the_formats() -> None:
    """A Beam SDK worker decodes bundles in several threads from its start: none of them may see the
    registry half filled (on Flink with two slots, valid Events were dead-lettered as "matches no
    registered format"). A fresh interpreter, eight threads released at once on a native Event."""
    code = (
        "import threading, orjson\n"
        "from kubesigma.connectors.formats import decode_record\n"
        "from kubesigma.connectors.model import AuditEvent, RawRecord, Source\n"
        "event = {'kind': 'Event', 'apiVersion': 'audit.k8s.io/v1', 'level': 'Metadata', 'auditID': 'a',\n"
        "         'stage': 'ResponseComplete', 'requestURI': '/api/v1/namespaces/default/configmaps/x',\n"
        "         'verb': 'get', 'user': {'username': 'u'}, 'sourceIPs': ['10.0.0.1'],\n"
        "         'responseStatus': {'code': 200}, 'requestReceivedTimestamp': '2026-12-07T10:00:00Z',\n"
        "         'stageTimestamp': '2026-12-07T10:00:00.001Z'}\n"
        "raw, gate, kinds = orjson.dumps(event), threading.Barrier(8), []\n"
        "def decode():\n"
        "    gate.wait()\n"
        "    kinds.extend(type(o).__name__ for o in decode_record(RawRecord(raw, Source('t', offset=0))))\n"
        "threads = [threading.Thread(target=decode) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(','.join(sorted(kinds)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ",".join(["AuditEvent"] * 8), out.stdout + out.stderr
