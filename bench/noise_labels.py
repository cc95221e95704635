"""What each attack scenario injected by the noise benchmark should raise: scenario -> substrings, any of
which, found (case-insensitively) in the title or id of a rule that alerted on the scenario's records,
counts the attack as caught. Edit this table when rules are renamed or added; bench/noise.py reports
scenarios missing from it, and tests/bench/test_noise_bench.py fails on them.

Where the pack has no rule for a class yet (issue 14, point 4), the substrings are a guess at the title
the new rule will carry, so the scenario shows as missed until it exists."""

from __future__ import annotations

TOKEN_OR_METADATA = ("Reads The Service Account Token Or Cloud Metadata",)

EXPECTED: dict[str, tuple[str, ...]] = {
    # exec: credential access, downloads, miners, kubectl cp
    "exec_sa_token": TOKEN_OR_METADATA,
    "exec_projected_token": TOKEN_OR_METADATA,
    "exec_irsa_token": TOKEN_OR_METADATA,
    "exec_metadata_aws": TOKEN_OR_METADATA,
    "exec_metadata_gce": TOKEN_OR_METADATA,
    "exec_download_pipe_shell": ("Downloads A Script And Pipes It To A Shell",),
    "exec_miner": ("Runs A Cryptominer",),
    "kubectl_cp_out": ("kubectl cp", "Copies Files Out", "Archive"),
    # workloads
    "privileged_pod": ("Privileged Container",),
    "hostpath_pod": ("Sensitive Host Path Mounted",),
    "hostpid_pod": ("hostPID",),
    "workload_kube_system": ("Workload Created In",),
    "workload_platform_namespace": ("Workload Created In",),
    "miner_image": ("Cryptominer Or Known Malicious Image",),
    "miner_args": ("Cryptominer Binary Or Mining Pool",),
    # RBAC
    "binding_cluster_admin": ("Binding To The cluster-admin",),
    "binding_admin_cluster_wide": ("admin Or edit", "Cluster-Wide Binding Of"),
    "binding_system_masters": ("system:masters",),
    "role_escalate_bind_impersonate": ("Escalate, Bind Or Impersonate",),
    "role_wildcard": ("Wildcard Verbs Or Resources",),
    "binding_then_exec": ("New Role Binding Followed By Exec",),
    # kubelet API, anonymous access, secrets, identities
    # GKE names the proxy resource, not the kubelet path behind it: there the general rule catches it.
    "nodes_proxy_run": ("Through The Kubelet API Via Node Proxy", "Kubelet API Reached Through"),
    "nodes_proxy_exec": ("Through The Kubelet API Via Node Proxy", "Kubelet API Reached Through"),
    "anonymous_allowed": ("By Anonymous User Allowed",),
    "anonymous_then_workload": ("Anonymous API Discovery Followed By Workload Creation",),
    "secret_enumeration": ("Secret Enumeration",),
    "recon_then_access": ("Permission Probing Followed By An Allowed Request",),
    "impersonate_system_masters": ("Impersonating A Privileged",),
    "token_request_stolen": ("Token Requested Through The TokenRequest API",),
    "client_certificate_csr": ("CertificateSigningRequest",),
    "webhook_backdoor": ("Admission Webhook Configuration Created Or Changed",),
}
