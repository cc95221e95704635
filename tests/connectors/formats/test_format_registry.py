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
