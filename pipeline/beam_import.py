"""How `kubesigma run` imports Beam: a local batch job leaves out Beam's cloud I/O, a fifth of the job's
start-up. Nothing here imports Beam before it decides."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from typing import Any

# Modules of Beam's that `import apache_beam` loads for every job and a local batch job never uses: the
# GCS, S3 and Azure file systems (their cloud clients: boto3, google-cloud-storage...) and the GCP
# connectors (BigQuery, Pub/Sub). Together about 0.95 G of the 6.7 G instructions `kubesigma run` takes to
# start. Beam imports each in a `try` that skips it when the module is not found.
CLOUD_IO = frozenset(
    {
        "apache_beam.io.gcp.gcsfilesystem",
        "apache_beam.io.aws.s3filesystem",
        "apache_beam.io.azure.blobstoragefilesystem",
        "apache_beam.io.gcp.bigquery",
    }
)
# Paths those file systems serve. Runners whose workers run on this machine, started by this process
# (they can read its standard input, and use only local paths unless told otherwise).
CLOUD_SCHEMES = ("gs://", "s3://", "azfs://")
LOCAL_RUNNERS = frozenset({"FnApiRunner", "DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner"})


def local_job(argv: Sequence[str]) -> bool:
    """Whether `kubesigma run` with these arguments runs a batch job here that names no cloud path: one
    that Beam's cloud I/O has nothing to do for."""
    runner = None
    for n, arg in enumerate(argv):
        if arg.startswith(CLOUD_SCHEMES) or ("=" in arg and arg.split("=", 1)[1].startswith(CLOUD_SCHEMES)):
            return False
        name = arg.split("=", 1)[0]
        if name in ("--streaming", "--pubsub-subscription", "--pubsub_subscription"):
            return False
        if name == "--runner":
            runner = arg.split("=", 1)[1] if "=" in arg else (argv[n + 1] if n + 1 < len(argv) else "")
    return runner is None or runner.split(".")[-1] in LOCAL_RUNNERS


class _WithoutCloudIO(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name in CLOUD_IO:
            raise ModuleNotFoundError(f"{name} is not loaded for a local job", name=name)


def import_beam_without_cloud_io() -> None:
    """`import apache_beam` without `CLOUD_IO`, for a `local_job`. Only the first import of Beam in a
    process can leave them out; any later import of them (a module that asks by name) loads them as usual."""
    if "apache_beam" in sys.modules:
        return
    finder = _WithoutCloudIO()
    sys.meta_path.insert(0, finder)
    try:
        import apache_beam  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
