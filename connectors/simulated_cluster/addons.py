"""Add-ons and operators every busy cluster runs: CoreDNS, kube-state-metrics, metrics-server,
cert-manager (its cainjector patching webhook caBundles), ingress-nginx, a policy engine (Kyverno, or
Gatekeeper on GKE) rewriting its webhooks, and informer-driven operators (Prometheus operator,
External Secrets, Reloader) that read and write Secrets as part of their job."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.simulated_cluster.day_traffic import (
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    INGRESSES,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    PVCS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    STATEFULSETS,
    DayTraffic,
    Resource,
)
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.platforms import APPS
from kubesigma.connectors.simulated_cluster.traffic import Episode

CERT_MANAGER = "cert-manager.io"
WEBHOOKS = "admissionregistration.k8s.io"


def webhook_configuration(name: str, service_ns: str, service: str, ca: str) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration as its owner (re)writes it, the CA bundle injected."""
    return {
        "kind": "ValidatingWebhookConfiguration",
        "apiVersion": "admissionregistration.k8s.io/v1",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": service}},
        "webhooks": [
            {
                "name": f"validate.{service}.svc",
                "clientConfig": {
                    "service": {"namespace": service_ns, "name": service, "path": "/validate", "port": 443},
                    "caBundle": ca,
                },
                "rules": [
                    {
                        "operations": ["CREATE", "UPDATE"],
                        "apiGroups": ["*"],
                        "apiVersions": ["*"],
                        "resources": ["*/*"],
                        "scope": "*",
                    }
                ],
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }


class AddOns(DayTraffic):
    SCENES = (
        "coredns",
        "kube_state_metrics",
        "metrics_server",
        "cert_manager",
        "cainjector_patch",
        "certificate_renewal",
        "ingress_nginx",
        "policy_engine",
        "policy_webhook_rewrite",
        "operators",
        "external_secrets_refresh",
    )

    def _sa(self, ns: str, sa: str, ua: str, pod: str | None = None) -> Identity:
        return self.c.workload(ns, sa, pod or sa, ua)

    def coredns(self, t: float) -> Episode:
        who = self._sa("kube-system", "coredns", "coredns/v1.11.3 (linux/amd64) kubernetes/$Format")
        return self.informer(t, who, (ENDPOINTSLICES, SERVICES, NAMESPACES), relist=0.05)

    def kube_state_metrics(self, t: float) -> Episode:
        """kube-state-metrics lists and watches every type it exports, Secrets included, cluster-wide."""
        ns = "gke-managed-cim" if self.platform == "gke" else "monitoring"
        who = self._sa(
            ns, "kube-state-metrics", "kube-state-metrics/v2.13.0 (linux/amd64) kubernetes/$Format"
        )
        kinds = (PODS, NODES, NAMESPACES, SECRETS, CONFIGMAPS, SERVICES, DEPLOYMENTS, REPLICASETS, DAEMONSETS,
                 STATEFULSETS, JOBS, PVCS, INGRESSES, ("batch", "v1", "cronjobs"),
                 ("autoscaling", "v2", "horizontalpodautoscalers"), ("policy", "v1", "poddisruptionbudgets"),
                 ("certificates.k8s.io", "v1", "certificatesigningrequests"), ("coordination.k8s.io", "v1", "leases"))  # fmt: skip
        return self.informer(t, who, kinds, relist=0.05)

    def metrics_server(self, t: float) -> Episode:
        who = self._sa(
            "kube-system", "metrics-server", "metrics-server/v0.7.1 (linux/amd64) kubernetes/$Format"
        )
        kind = self.rng.random()
        if kind < 0.5:
            return self.informer(t, who, (NODES, PODS), relist=0.05)
        if kind < 0.8:
            selector = "fieldSelector=metadata.name%3Dextension-apiserver-authentication"
            return self.watch(t, who, CONFIGMAPS, "kube-system", selector=selector)
        # Delegated authorization of a scrape of its own /metrics.
        review = {
            "kind": "SubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "spec": {
                "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
                "user": "system:serviceaccount:monitoring:prometheus",
            },
        }
        return self.api.call(
            t, who, "create", "subjectaccessreviews", None, group="authorization.k8s.io", body=review,
            response={**review, "status": {"allowed": True}},
        )  # fmt: skip

    # ---- cert-manager -------------------------------------------------------------------------

    def cert_manager(self, t: float) -> Episode:
        ua = "cert-manager-controller/v1.15.3 (linux/amd64) cert-manager/0e0b9c1"
        who = self._sa("cert-manager", "cert-manager", ua)
        kind = self.rng.random()
        if kind < 0.43:
            # cert-manager elects its leaders in kube-system by default.
            return self.lease(t, who, "kube-system", "cert-manager-controller")
        if kind < 0.86:
            cainjector = self._sa(
                "cert-manager", "cert-manager-cainjector", ua.replace("controller", "cainjector")
            )
            return self.lease(t, cainjector, "kube-system", "cert-manager-cainjector-leader-election")
        crds = tuple(
            (CERT_MANAGER, "v1", r)
            for r in ("certificates", "certificaterequests", "issuers", "clusterissuers")
        )
        crds += (("acme.cert-manager.io", "v1", "orders"), ("acme.cert-manager.io", "v1", "challenges"))
        return self.informer(t, who, (*crds, SECRETS, INGRESSES, PODS, SERVICES), relist=0.03)

    def cainjector_patch(self, t: float) -> Episode:
        """cainjector writes the CA bundle into the webhook configurations and CRDs that ask for it."""
        ua = "cert-manager-cainjector/v1.15.3 (linux/amd64) cert-manager/0e0b9c1"
        who = self._sa("cert-manager", "cert-manager-cainjector", ua)
        target, ns, svc = self.rng.choice(
            (
                ("cert-manager-webhook", "cert-manager", "cert-manager-webhook"),
                ("ingress-nginx-admission", "ingress-nginx", "ingress-nginx-controller-admission"),
            )
        )
        body = webhook_configuration(target, ns, svc, "LS0tLS1CRUdJTiBDRVJU" + self.c.suffix(20))
        out = self.api.call(t, who, "get", "validatingwebhookconfigurations", None, target, group=WEBHOOKS)
        return out + self.api.call(
            t + 0.02,
            who,
            "update",
            "validatingwebhookconfigurations",
            None,
            target,
            group=WEBHOOKS,
            body=body,
            response=body,
        )

    def certificate_renewal(self, t: float) -> Episode:
        """A certificate nears expiry: cert-manager asks its issuer and writes the renewed key pair."""
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        who = self._sa(
            "cert-manager",
            "cert-manager",
            "cert-manager-controller/v1.15.3 (linux/amd64) cert-manager/0e0b9c1",
        )
        request = f"{app}-tls-{self.rng.randrange(1, 9)}"
        out = self.api.call(t, who, "create", "certificaterequests", ns, request, group=CERT_MANAGER)
        t += self.rng.uniform(5, 40)
        out += self.api.call(t, who, "get", "secrets", ns, f"{app}-tls")
        return out + self.api.call(t + 0.05, who, "update", "secrets", ns, f"{app}-tls")

    def ingress_nginx(self, t: float) -> Episode:
        ua = "nginx-ingress-controller/v1.11.2 (linux/amd64) ingress-nginx/46e76e5916813cfca2a9b0bfdc34b69a0000f6b9"
        who = self._sa("ingress-nginx", "ingress-nginx", ua, "ingress-nginx-controller")
        kind = self.rng.random()
        if kind < 0.9:
            return self.lease(t, who, "ingress-nginx", "ingress-nginx-leader")
        if kind < 0.92:
            ns = self.rng.choice(("shop", "identity"))
            app = "web" if ns == "shop" else "auth"
            status = {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": app, "namespace": ns},
                      "status": {"loadBalancer": {"ingress": [{"ip": "10.0.200.15"}]}}}  # fmt: skip
            return self.api.call(
                t,
                who,
                "update",
                "ingresses",
                ns,
                app,
                group="networking.k8s.io",
                sub="status",
                body=status,
                response=status,
            )
        # The controller watches Secrets cluster-wide for TLS certificates.
        return self.informer(
            t,
            who,
            (
                INGRESSES,
                SERVICES,
                ENDPOINTSLICES,
                SECRETS,
                CONFIGMAPS,
                ("networking.k8s.io", "v1", "ingressclasses"),
            ),
        )

    # ---- policy engine ------------------------------------------------------------------------

    def _policy_engine(self) -> tuple[Identity, str, str]:
        if self.platform == "gke":
            ua = "gatekeeper/v3.16.3 (linux/amd64) 0ab1a7b/2024-06-13T17:45:20Z"
            who = self._sa("gatekeeper-system", "gatekeeper-admin", ua, "gatekeeper-controller-manager")
            return who, "gatekeeper-validating-webhook-configuration", "gatekeeper-webhook-service"
        ua = "kyverno/v1.12.5 (linux/amd64) kubernetes/$Format"
        who = self._sa("kyverno", "kyverno-admission-controller", ua, "kyverno-admission-controller")
        return who, "kyverno-resource-validating-webhook-cfg", "kyverno-svc"

    def policy_engine(self, t: float) -> Episode:
        who, _webhook, _svc = self._policy_engine()
        kind = self.rng.random()
        if self.platform == "gke":
            constraints: tuple[Resource, ...] = (
                ("templates.gatekeeper.sh", "v1", "constrainttemplates"),
                ("constraints.gatekeeper.sh", "v1beta1", "k8srequiredlabels"),
                ("config.gatekeeper.sh", "v1alpha1", "configs"),
            )
            if kind < 0.3:
                # The audit controller lists what its constraints cover, every few minutes.
                return self.relist(
                    t, who, self.rng.choice((PODS, DEPLOYMENTS, SERVICES, NAMESPACES, INGRESSES))
                )
            return self.informer(t, who, (*constraints, NAMESPACES, PODS))
        if kind < 0.75:
            return self.lease(t, who, "kyverno", "kyverno")
        if kind < 0.9:
            ns = self.rng.choice(tuple(APPS))
            report = f"{self.c.uuid()}"
            reports = "wgpolicyk8s.io"
            reporter = self._sa(
                "kyverno", "kyverno-reports-controller", "kyverno/v1.12.5 (linux/amd64) kubernetes/$Format"
            )
            return self.api.call(
                t, reporter, "update", "policyreports", ns, report, group=reports, version="v1alpha2"
            )
        kinds: tuple[Resource, ...] = (("kyverno.io", "v1", "clusterpolicies"), ("kyverno.io", "v1", "policies"), NAMESPACES,
                                       CONFIGMAPS, PODS, DEPLOYMENTS, SECRETS)  # fmt: skip
        return self.informer(t, who, kinds)

    def policy_webhook_rewrite(self, t: float) -> Episode:
        """The engine rewrites its webhook configuration (policies changed, certificate rotated)."""
        who, webhook, svc = self._policy_engine()
        ns = "gatekeeper-system" if self.platform == "gke" else "kyverno"
        body = webhook_configuration(webhook, ns, svc, "LS0tLS1CRUdJTiBDRVJU" + self.c.suffix(20))
        out = self.api.call(t, who, "get", "validatingwebhookconfigurations", None, webhook, group=WEBHOOKS)
        return out + self.api.call(
            t + 0.02,
            who,
            "update",
            "validatingwebhookconfigurations",
            None,
            webhook,
            group=WEBHOOKS,
            body=body,
            response=body,
        )

    # ---- operators ----------------------------------------------------------------------------

    def operators(self, t: float) -> Episode:
        """Operators' informers; the Prometheus operator also rewrites the configuration Secret it owns."""
        prometheus = self._sa(
            "monitoring", "prometheus-operator", "PrometheusOperator/0.76.0 (linux/amd64) kubernetes/$Format"
        )
        if self.rng.random() < 0.1:
            out = self.api.call(t, prometheus, "get", "secrets", "monitoring", "prometheus-k8s")
            return out + self.api.call(
                t + 0.01, prometheus, "update", "secrets", "monitoring", "prometheus-k8s"
            )
        monitoring = tuple(
            ("monitoring.coreos.com", "v1", r)
            for r in ("prometheuses", "alertmanagers", "servicemonitors", "podmonitors", "prometheusrules")
        )
        reloader = self._sa(
            "kube-system", "reloader", "Reloader/v1.1.0 (linux/amd64) kubernetes/$Format", "reloader-reloader"
        )
        external = self._sa(
            "external-secrets",
            "external-secrets",
            "external-secrets/v0.10.3 (linux/amd64) kubernetes/$Format",
        )
        crds = (
            ("external-secrets.io", "v1beta1", "externalsecrets"),
            ("external-secrets.io", "v1beta1", "clustersecretstores"),
        )
        return self.informers(
            t,
            (
                (prometheus, (*monitoring, SECRETS, CONFIGMAPS, STATEFULSETS), "monitoring"),
                (reloader, (CONFIGMAPS, SECRETS, DEPLOYMENTS, STATEFULSETS, DAEMONSETS), None),
                (external, (*crds, SECRETS), None),
            ),
        )

    def external_secrets_refresh(self, t: float) -> Episode:
        """External Secrets refreshes an app's credentials from the cloud secret store: reads, then updates."""
        who = self._sa(
            "external-secrets",
            "external-secrets",
            "external-secrets/v0.10.3 (linux/amd64) kubernetes/$Format",
        )
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        out = self.api.call(
            t,
            who,
            "get",
            "externalsecrets",
            ns,
            f"{app}-db-credentials",
            group="external-secrets.io",
            version="v1beta1",
        )
        out += self.api.call(t + 0.2, who, "get", "secrets", ns, f"{app}-db-credentials")
        if self.rng.random() < 0.3:
            out += self.api.call(t + 0.25, who, "update", "secrets", ns, f"{app}-db-credentials")
        return out
