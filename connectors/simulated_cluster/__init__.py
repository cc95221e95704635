"""A simulated Kubernetes cluster's audit log, deterministic for a seed: the benign traffic of its
components, people and CI, benign look-alikes, and the mission's attacks, for `kubesigma demo generate`,
the benchmarks and tests. Nothing of the detection job imports it.

Everything comes from one `random.Random(seed)`: no global randomness, no wall clock, so one seed always
gives the same bytes. Modules: `identities` and `cluster` (who exists, the cluster's state), `audit` (how
the API server records a request), `manifests` (the objects requests carry), one module per family of
scenes (`components`, `users`, `look_alikes`, `attacks`, each a `traffic.Traffic`), `timeline` (when
scenes happen, `generate`), `log_file` (writing). Another platform's traffic (GKE's or EKS's components
and add-ons, say) is one more module of `Traffic` families, named with weights in the timeline's tables.
"""

from kubesigma.connectors.simulated_cluster.day import busy_day
from kubesigma.connectors.simulated_cluster.log_file import DayLog, write_day, write_jsonl
from kubesigma.connectors.simulated_cluster.timeline import DEFAULT_CLUSTER, DEFAULT_START, generate

__all__ = ["DEFAULT_CLUSTER", "DEFAULT_START", "DayLog", "busy_day", "generate", "write_day", "write_jsonl"]
