"""Refused requests of benign but misconfigured clients, retried as clients retry them: an informer
missing RBAC, an operator whose CRD was removed, stale tokens (401), an expired kubectl login, admission
policies refusing a deploy, and the optimistic-concurrency conflicts controllers run into all day."""

from __future__ import annotations

from kubesigma.connectors.simulated_cluster.day_traffic import PODS, DayTraffic
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.platforms import APPS
from kubesigma.connectors.simulated_cluster.traffic import Episode


class Misconfigured(DayTraffic):
    SCENES = (
        "missing_rbac_retries",
        "removed_crd_retries",
        "stale_token",
        "expired_login",
        "admission_refused",
        "update_conflict",
    )

    def missing_rbac_retries(self, t: float) -> Episode:
        """An OpenTelemetry collector's k8sattributes informer lacks `list replicasets`: its reflector
        retries about every 30 s while its other informers work."""
        ua = "otelcol-contrib/0.108.0 (linux/amd64) kubernetes/$Format"
        who = self.c.workload("observability", "otel-collector", "otel-collector", ua)
        out = self.watch(t, who, PODS)
        for _ in range(self.rng.randrange(8, 20)):
            t += self.rng.uniform(25, 35)
            out += self.api.call(
                t, who, "list", "replicasets", group="apps", query="limit=500&resourceVersion=0", deny="rbac"
            )
        return out

    def removed_crd_retries(self, t: float) -> Episode:
        """An operator left running after its CRD was removed: list answers 404, retried."""
        ua = "widget-operator/v0.3.1 (linux/amd64) kubernetes/$Format"
        who = self.c.workload("legacy-tools", "widget-operator", "widget-operator", ua)
        out: Episode = []
        for _ in range(self.rng.randrange(4, 12)):
            out += self.api.call(
                t, who, "list", "widgets", group="acme.dev", version="v1alpha1", query="limit=500&resourceVersion=0",
                code=404, message="the server could not find the requested resource",
            )  # fmt: skip
            t += self.rng.uniform(20, 40)
        return out

    def stale_token(self, t: float) -> Episode:
        """A retired monitoring host still scrapes with a deleted service account's token: 401, no user."""
        who = Identity(
            "",
            (),
            "",
            "10.30.7.15" if self.platform == "self-managed" else self.c.pod_ip(),
            "Prometheus/2.45.0",
            "",
        )
        out: Episode = []
        for _ in range(self.rng.randrange(3, 10)):
            out += self.api.call(t, who, "list", "pods", query="limit=500", deny="unauthenticated")
            t += self.rng.uniform(28, 32)
        return out

    def expired_login(self, t: float) -> Episode:
        """An engineer's cached kubectl credential expired: 401, the login is renewed, the call succeeds."""
        who = self.c.person()
        ns = self.rng.choice(tuple(APPS))
        out = self.api.call(t, who, "list", "pods", ns, query="limit=500", deny="unauthenticated")
        out += self.api.call(t + self.rng.uniform(5, 40), who, "list", "pods", ns, query="limit=500")
        return out

    def admission_refused(self, t: float) -> Episode:
        """A policy refuses a deploy (a pod without resource limits, a missing team label): 403, decision allow."""
        who = self.c.ci() if self.rng.random() < 0.5 else self.c.person(1)
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        if self.platform == "gke":
            message = (
                'admission webhook "validation.gatekeeper.sh" denied the request: [require-team-label] '
                'you must provide labels: {"team"}'
            )
        else:
            message = (
                f'admission webhook "validate.kyverno.svc-fail" denied the request: resource Deployment/{ns}/{app} '
                "was blocked due to the following policies require-requests-limits: validate-resources: "
                "validation error: CPU and memory resource requests and limits are required"
            )
        return self.api.call(
            t, who, "patch", "deployments", ns, app, group="apps", query="fieldManager=kubectl-client-side-apply",
            body={"metadata": {"labels": {"app": app}}}, deny="admission", message=message,
        )  # fmt: skip

    def update_conflict(self, t: float) -> Episode:
        """Two writers raced: the controller's update loses on resourceVersion (409) and is redone."""
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        who = self.c.controller("deployment-controller")
        out = self.api.call(
            t, who, "update", "deployments", ns, app, group="apps", sub="status", deny="conflict"
        )
        return out + self.api.call(
            t + 0.01, who, "update", "deployments", ns, app, group="apps", sub="status"
        )
