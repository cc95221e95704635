"""Unauthenticated callers of the API server: kube-probe and load-balancer health checks (allowed: they
read public paths) and internet-wide scanners knocking on a public endpoint (refused)."""

from __future__ import annotations

from kubesigma.connectors.simulated_cluster.day_traffic import DayTraffic
from kubesigma.connectors.simulated_cluster.identities import PUBLIC_INFO_VIEWER, anonymous
from kubesigma.connectors.simulated_cluster.traffic import Episode

# Addresses of internet-wide scanners (the benchmarking range 198.18.0.0/15; no rule reads it) and what they send.
SCANNER_IPS = tuple(
    f"198.18.{i}.{j}" for i, j in ((3, 17), (9, 201), (44, 5), (71, 130), (120, 66), (200, 9))
)
SCANNER_AGENTS = (
    "Mozilla/5.0 zgrab/0.x",
    "Expanse, a Palo Alto Networks company, searches across the global IPv4 space multiple times per day",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "curl/8.4.0",
)
# Paths anonymous callers may not read (only /healthz, /livez, /readyz and /version are public).
SCANNER_PATHS = (
    "/",
    "/api",
    "/apis",
    "/.env",
    "/.git/config",
    "/metrics",
    "/HNAP1",
    "/favicon.ico",
    "/robots.txt",
)


class Probes(DayTraffic):
    SCENES = ("kube_probe", "load_balancer_check", "internet_scanner")

    def kube_probe(self, t: float) -> Episode:
        """The control plane's kubelet probes its API server unauthenticated, from loopback."""
        who = anonymous("127.0.0.1", "kube-probe/1.30+", PUBLIC_INFO_VIEWER)
        path = self.rng.choice(("/readyz", "/livez", "/readyz", "/livez?exclude=etcd"))
        return self.api.call(t, who, "get", None, path=path.split("?")[0], query=path.partition("?")[2])

    def internet_scanner(self, t: float) -> Episode:
        """Internet-wide scanners knock on the public endpoint: a few paths, refused (403)."""
        who = anonymous(self.rng.choice(SCANNER_IPS), self.rng.choice(SCANNER_AGENTS))
        out: Episode = []
        for path in self.rng.sample(SCANNER_PATHS, self.rng.randrange(1, 4)):
            out += self.api.call(t, who, "get", None, path=path, deny="rbac")
            t += self.rng.uniform(0.2, 3)
        return out

    def load_balancer_check(self, t: float) -> Episode:
        """The load balancer in front of the API servers checks /readyz from its own private address."""
        ip = (
            "10.0.0.4"
            if self.platform != "eks"
            else f"10.0.{self.rng.choice((0, 16, 32))}.{self.rng.randrange(5, 250)}"
        )
        agent = "ELB-HealthChecker/2.0" if self.platform == "eks" else "kube-probe/1.30+"
        return self.api.call(t, anonymous(ip, agent, PUBLIC_INFO_VIEWER), "get", None, path="/readyz")
