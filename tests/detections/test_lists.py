"""Named value lists: a file or a folder of files each, and a site's folders extend the shipped lists
of the same name, so platform identities and namespaces grow without editing a rule."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubesigma.connectors.model import KUBERNETES_AUDIT
from kubesigma.detections.config import EngineConfig
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.lists import LISTS_DIR, load_value_lists


def test_a_folder_is_one_list_made_of_its_files() -> None:
    lists = load_value_lists([LISTS_DIR])
    identities = lists["platform_identities"]
    assert "system:kube-controller-manager" in identities  # kubernetes.txt
    assert "eks:addon-manager" in identities  # eks.txt
    assert "service-*@container-engine-robot.iam.gserviceaccount.com" in identities  # gke.txt
    assert "system:serviceaccount:cert-manager:cert-manager-cainjector" in identities  # addons.txt
    assert {"kube-system", "gke-managed-*", "amazon-*"} <= set(lists["platform_namespaces"])


def test_a_site_list_folder_extends_the_shipped_list(tmp_path: Path) -> None:
    site = tmp_path / "lists"
    (site / "platform_identities").mkdir(parents=True)
    (site / "platform_identities" / "ours.txt").write_text(
        "# our GitOps deployer\nsystem:serviceaccount:gitops:deployer\n"
    )
    rule = {
        "title": "binding by a non-platform identity",
        "id": "00000000-0000-0000-0000-00000000a11d",
        "status": "test",
        "logsource": {"product": "kubernetes", "service": "audit"},
        "detection": {
            "sel": {"objectRef.resource": "clusterrolebindings"},
            "platform": {"user.username|expand": "%platform_identities%"},
            "condition": "sel and not platform",
        },
        "level": "low",
    }

    def fires(user: str, config: EngineConfig) -> bool:
        rules = RuleSet.from_yaml([yaml.safe_dump(rule)], config)
        doc = {"objectRef": {"resource": "clusterrolebindings"}, "user": {"username": user}}
        return bool(rules.match_document(KUBERNETES_AUDIT, doc))

    shipped, extended = EngineConfig(), EngineConfig(list_paths=(LISTS_DIR, site))
    assert fires("system:serviceaccount:gitops:deployer", shipped)
    assert not fires("system:serviceaccount:gitops:deployer", extended)
    assert not fires("system:kube-controller-manager", extended)  # the shipped values are still there
    assert fires("alice@example.com", extended)
