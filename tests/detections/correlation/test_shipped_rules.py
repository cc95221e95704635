"""The shipped correlation rules, each with an attack that fires it and a look-alike that does not."""

from __future__ import annotations

import pytest

from kubesigma.detections.correlation import compile_correlations
from kubesigma.detections.correlation.replay import replay
from kubesigma.detections.engine import RuleSet
from support.audit_records import T0, audit_event, to_event
from support.paths import SHIPPED_CORRELATIONS, SHIPPED_RULES

RULES = [SHIPPED_RULES, SHIPPED_CORRELATIONS]

ENUMERATION = "4891b83f-e847-49fa-934d-5d84e365cda3"
SCANNER = "62b79c28-c652-42cd-ad32-b99f2b7f71ce"
DENIED_THEN_ALLOWED_USER = "9b9a9d14-01da-453d-bc28-ffa8a5c3fea1"
DENIED_THEN_ALLOWED_IP = "4f71ec27-94c3-4331-ba6c-4c61a2499e20"
BINDING_THEN_EXEC = "231a4360-c76d-442e-9978-0e159509880a"
DISCOVERY_THEN_WORKLOAD = "3bb65ac3-3507-44b7-872e-10952559a74a"


@pytest.fixture(scope="module")
def pack():
    ruleset = RuleSet.load(RULES)
    return ruleset, compile_correlations(ruleset)


def fired(pack, docs) -> list[str]:
    ruleset, plan = pack
    events = [to_event(d, n) for n, d in enumerate(docs)]
    return [f.spec_id for f in replay(ruleset, plan, events) if plan.alerts_alone(f.spec_id)]


def test_secret_enumeration_title(pack) -> None:
    assert "Secret Enumeration" in pack[0].rule(ENUMERATION).title


def test_secret_enumeration_fires_on_ten_distinct_secrets_in_five_minutes(pack) -> None:
    docs = [audit_event(i, at=T0 + 20 * i, name=f"secret-{i}", user="dev@example.com") for i in range(10)]
    assert fired(pack, docs).count(ENUMERATION) == 1


def test_secret_enumeration_ignores_the_same_secret_read_again(pack) -> None:
    docs = [audit_event(i, at=T0 + 5 * i, name="app-tls", user="dev@example.com") for i in range(30)]
    assert ENUMERATION not in fired(pack, docs)


def test_secret_enumeration_ignores_reads_spread_over_an_hour(pack) -> None:
    docs = [audit_event(i, at=T0 + 360 * i, name=f"secret-{i}", user="dev@example.com") for i in range(10)]
    assert ENUMERATION not in fired(pack, docs)


def anonymous_denied(t: float, n: int, ip: str) -> dict:
    return audit_event(
        n,
        at=t,
        verb="list",
        resource="pods",
        namespace="kube-system",
        user="system:anonymous",
        groups=("system:unauthenticated",),
        ip=ip,
        decision="forbid",
        code=403,
    )


def test_scanner_burst_fires_on_twenty_denied_anonymous_requests(pack) -> None:
    docs = [anonymous_denied(T0 + 3 * i, i, "198.51.100.23") for i in range(20)]
    assert fired(pack, docs).count(SCANNER) == 1


def test_scanner_burst_ignores_denials_from_many_addresses(pack) -> None:
    docs = [anonymous_denied(T0 + 3 * i, i, f"198.51.100.{i}") for i in range(20)]
    assert SCANNER not in fired(pack, docs)


PROBED = ("secrets", "pods", "serviceaccounts", "configmaps", "roles", "nodes")


def probing(user: str, ip: str, allowed_after: float | None, kinds: tuple[str, ...] = PROBED) -> list[dict]:
    """A token tried against one kind of resource after another, every request refused, then (maybe)
    one request allowed."""
    docs = [
        audit_event(
            i,
            at=T0 + 10 * i,
            verb="list",
            resource=kinds[i % len(kinds)],
            namespace=f"ns-{i}",
            user=user,
            ip=ip,
            decision="forbid",
            code=403,
        )
        for i in range(12)
    ]
    if allowed_after is not None:
        docs.append(
            audit_event(100, at=T0 + 110 + allowed_after, verb="list", resource="pods", user=user, ip=ip)
        )
    return docs


def test_probing_then_allowed_fires_by_identity_and_by_address(pack) -> None:
    out = fired(pack, probing("stolen-token", "203.0.113.140", allowed_after=60))
    assert out.count(DENIED_THEN_ALLOWED_USER) == 1
    assert out.count(DENIED_THEN_ALLOWED_IP) == 1


def test_a_client_missing_one_permission_retrying_is_not_probing(pack) -> None:
    """A collector without RBAC for pods retries its list again and again, and does other, allowed
    things: refusals on one kind of resource are not permission probing."""
    out = fired(
        pack, probing("system:serviceaccount:observability:otel-collector", "10.1.2.3", 60, ("pods",))
    )
    assert DENIED_THEN_ALLOWED_USER not in out
    assert DENIED_THEN_ALLOWED_IP not in out


def test_denied_burst_without_a_later_success_does_not_fire(pack) -> None:
    out = fired(pack, probing("stolen-token", "203.0.113.140", allowed_after=None))
    assert DENIED_THEN_ALLOWED_USER not in out
    assert DENIED_THEN_ALLOWED_IP not in out


def test_success_long_after_the_burst_does_not_fire(pack) -> None:
    out = fired(pack, probing("stolen-token", "203.0.113.140", allowed_after=3600))
    assert DENIED_THEN_ALLOWED_USER not in out


def binding(t: float, n: int, subject: str) -> dict:
    body = {
        "kind": "ClusterRoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": f"debug-{subject}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": subject}],
    }
    return audit_event(
        n,
        at=t,
        verb="create",
        resource="clusterrolebindings",
        namespace=None,
        user="admin@example.com",
        request_object=body,
        uri="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    )


def exec_by(t: float, n: int, user: str) -> dict:
    return audit_event(
        n,
        at=t,
        verb="create",
        resource="pods",
        name="web-0",
        subresource="exec",
        user=user,
        uri="/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true&tty=true",
    )


def test_binding_then_exec_by_the_bound_subject_fires(pack) -> None:
    out = fired(pack, [binding(T0, 0, "mallory@example.com"), exec_by(T0 + 120, 1, "mallory@example.com")])
    assert out.count(BINDING_THEN_EXEC) == 1


def test_exec_by_someone_else_after_a_binding_does_not_fire(pack) -> None:
    out = fired(pack, [binding(T0, 0, "mallory@example.com"), exec_by(T0 + 120, 1, "bob@example.com")])
    assert BINDING_THEN_EXEC not in out


def test_exec_before_the_binding_does_not_fire(pack) -> None:
    out = fired(pack, [exec_by(T0, 0, "mallory@example.com"), binding(T0 + 120, 1, "mallory@example.com")])
    assert BINDING_THEN_EXEC not in out


def discovery(t: float, n: int, ip: str) -> dict:
    return audit_event(
        n,
        at=t,
        verb="get",
        resource="",
        namespace=None,
        user="system:anonymous",
        groups=("system:unauthenticated",),
        ip=ip,
        uri="/apis",
    )


def workload(t: float, n: int, ip: str) -> dict:
    return audit_event(
        n,
        at=t,
        verb="create",
        resource="deployments",
        name="xmrig",
        namespace="default",
        user="system:serviceaccount:default:leaked",
        ip=ip,
        uri="/apis/apps/v1/namespaces/default/deployments",
    )


def test_anonymous_discovery_then_workload_from_the_same_address_fires(pack) -> None:
    out = fired(pack, [discovery(T0, 0, "203.0.113.66"), workload(T0 + 300, 1, "203.0.113.66")])
    assert out.count(DISCOVERY_THEN_WORKLOAD) == 1


def test_workload_from_another_address_does_not_fire(pack) -> None:
    out = fired(pack, [discovery(T0, 0, "203.0.113.66"), workload(T0 + 300, 1, "10.0.5.20")])
    assert DISCOVERY_THEN_WORKLOAD not in out


def test_correlation_inputs_do_not_alert_on_their_own(pack) -> None:
    _, plan = pack
    helpers = [s for s in plan.inputs if s not in plan.infos]
    assert helpers
    assert all(not plan.alerts_alone(h) for h in helpers if h != "2aee7041-fe8b-4f19-9610-e1fcf92cf280")
