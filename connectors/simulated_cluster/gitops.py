"""GitOps controllers and Helm: Argo CD (GKE, EKS) and Flux (self-managed) watching every type cluster-wide,
reading their repository credentials, dry-running and applying what Git says (ClusterRoles with
wildcards and webhook configurations included), and Helm's release Secrets."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.simulated_cluster.addons import webhook_configuration
from kubesigma.connectors.simulated_cluster.control_plane import EVERY_TYPE
from kubesigma.connectors.simulated_cluster.day_traffic import DayTraffic
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.manifests import config_map, deployment
from kubesigma.connectors.simulated_cluster.traffic import Episode

RBAC = "rbac.authorization.k8s.io"


def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


# What the GitOps controller keeps in sync besides the apps: platform add-ons, RBAC and webhooks among them.
def platform_objects(gitops: str) -> list[tuple[str, str, str | None, str, dict[str, Any]]]:
    """(API group, resource, namespace, name, object) the controller applies."""
    everything = [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ]
    controller_role = "argocd-application-controller" if gitops == "argocd" else "flux-kustomize-controller"
    operator_rules = [
        {"apiGroups": ["monitoring.coreos.com"], "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["*"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["*"]},
    ]
    return [
        (RBAC, "clusterroles", None, controller_role, cluster_role(controller_role, everything)),
        (RBAC, "clusterroles", None, "prometheus-operator", cluster_role("prometheus-operator", operator_rules)),
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            None,
            "ingress-nginx-admission",
            webhook_configuration("ingress-nginx-admission", "ingress-nginx", "ingress-nginx-controller-admission", ""),
        ),
        ("", "configmaps", "ingress-nginx", "ingress-nginx-controller", config_map("ingress-nginx", "ingress-nginx-controller", {"use-forwarded-headers": "true"})),
    ]  # fmt: skip


class GitOps(DayTraffic):
    SCENES = ("gitops_informers", "gitops_credentials", "gitops_sync", "gitops_status")

    @property
    def tool(self) -> str:
        return "flux" if self.platform == "self-managed" else "argocd"

    def _controller(self) -> Identity:
        if self.tool == "argocd":
            ua = "argocd-application-controller/v2.12.3+6b9cd82 (linux/amd64) kubernetes/6b9cd82"
            return self.c.workload(
                "argocd", "argocd-application-controller", "argocd-application-controller", ua
            )
        ua = "kustomize-controller/v1.3.0 (linux/amd64) kubernetes/$Format"
        return self.c.workload("flux-system", "kustomize-controller", "kustomize-controller", ua)

    def gitops_informers(self, t: float) -> Episode:
        """The controller caches every type it manages, Secrets included, cluster-wide."""
        return self.informer(t, self._controller(), EVERY_TYPE, relist=0.05)

    def gitops_credentials(self, t: float) -> Episode:
        """Repository and cluster credentials read on every reconcile."""
        if self.tool == "argocd":
            ua = "argocd-server/v2.12.3+6b9cd82 (linux/amd64) kubernetes/6b9cd82"
            who = self.c.workload("argocd", "argocd-server", "argocd-server", ua)
            name = self.rng.choice(("argocd-secret", "repo-platform-gitops", "argocd-repo-creds-github"))
            return self.api.call(t, who, "get", "secrets", "argocd", name)
        ua = "source-controller/v1.3.0 (linux/amd64) kubernetes/$Format"
        who = self.c.workload("flux-system", "source-controller", "source-controller", ua)
        return self.api.call(t, who, "get", "secrets", "flux-system", "flux-system")

    def gitops_status(self, t: float) -> Episode:
        who = self._controller()
        if self.tool == "argocd":
            app = self.rng.choice(("platform", "monitoring", "ingress-nginx", "cert-manager", "argocd"))
            return self.api.call(
                t, who, "update", "applications", "argocd", app, group="argoproj.io", version="v1alpha1"
            )
        name = self.rng.choice(("flux-system", "platform", "monitoring", "apps"))
        return self.api.call(
            t,
            who,
            "patch",
            "kustomizations",
            "flux-system",
            name,
            group="kustomize.toolkit.fluxcd.io",
            sub="status",
        )

    def gitops_sync(self, t: float) -> Episode:
        """A reconcile: a server-side dry run of each object (drift detection), then an apply of what differs."""
        who = self._controller()
        manager = "argocd-controller" if self.tool == "argocd" else "kustomize-controller"
        objects = platform_objects(self.tool)
        grafana = deployment(
            self.c, "monitoring", "grafana", "docker.io/grafana/grafana:11.2.0", 3000, replicas=1
        )
        objects.append(("apps", "deployments", "monitoring", "grafana", grafana))
        out: Episode = []
        for group, resource, ns, name, obj in self.rng.sample(
            objects, self.rng.randrange(2, len(objects) + 1)
        ):
            query = f"dryRun=All&fieldManager={manager}&force=true"
            out += self.api.call(
                t, who, "patch", resource, ns, name, group=group, query=query, body=obj, response=obj
            )
            t += self.rng.uniform(0.01, 0.1)
            if self.rng.random() < 0.15:  # drift found: apply for real
                query = f"fieldManager={manager}&force=true"
                out += self.api.call(
                    t, who, "patch", resource, ns, name, group=group, query=query, body=obj, response=obj
                )
        return out

    # ---- Helm -----------------------------------------------------------------------------------

    def helm_release(self, t: float, who: Identity, ns: str, release: str) -> Episode:
        """`helm upgrade --install`: the release history read, a new release Secret, the previous superseded."""
        version = self.rng.randrange(2, 60)
        selector = f"labelSelector=name%3D{release}%2Cowner%3Dhelm"
        out = self.api.call(t, who, "list", "secrets", ns, query=selector)
        t += self.rng.uniform(0.1, 0.5)
        out += self.api.call(t, who, "get", "secrets", ns, f"sh.helm.release.v1.{release}.v{version - 1}")
        out += self.api.call(t + 0.3, who, "create", "secrets", ns)
        t += self.rng.uniform(2, 20)
        out += self.api.call(t, who, "update", "secrets", ns, f"sh.helm.release.v1.{release}.v{version - 1}")
        return out + self.api.call(
            t + 0.05, who, "update", "secrets", ns, f"sh.helm.release.v1.{release}.v{version}"
        )
