"""bundle/: a structurally sound OperatorHub bundle (no OLM runs here), consistent with
manifests/crds/ and manifests/operator/ rather than a hand-kept copy of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from metallb_py import __version__

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundle"
CSV_PATH = BUNDLE / "manifests" / "metallb-py-operator.clusterserviceversion.yaml"
OPERATOR = ROOT / "manifests" / "operator"


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _csv() -> dict[str, Any]:
    (doc,) = _load(CSV_PATH)
    return doc


def _crds() -> dict[str, dict[str, Any]]:
    return {p.name: _load(p)[0] for p in sorted((ROOT / "manifests" / "crds").glob("*.yaml"))}


def test_csv_identity() -> None:
    csv = _csv()
    assert csv["apiVersion"] == "operators.coreos.com/v1alpha1"
    assert csv["kind"] == "ClusterServiceVersion"
    assert csv["metadata"]["name"] == f"metallb-py-operator.v{__version__}"
    assert csv["spec"]["version"] == __version__
    for key in ("displayName", "description", "provider", "maturity"):
        assert csv["spec"][key], key


def test_install_modes_own_namespace_only_and_explained() -> None:
    spec = _csv()["spec"]
    modes = {m["type"]: m["supported"] for m in spec["installModes"]}
    assert modes == {
        "OwnNamespace": True,
        "SingleNamespace": True,
        "MultiNamespace": False,
        "AllNamespaces": False,
    }
    assert "own namespace" in spec["description"]


def test_owned_crds_match_the_crds_and_each_has_a_file() -> None:
    owned = _csv()["spec"]["customresourcedefinitions"]["owned"]
    expected = set()
    for crd in _crds().values():
        for version in crd["spec"]["versions"]:
            if version["served"]:
                expected.add(
                    (crd["metadata"]["name"], version["name"], crd["spec"]["names"]["kind"])
                )
    assert {(o["name"], o["version"], o["kind"]) for o in owned} == expected
    for o in owned:
        assert o["displayName"] and o["description"], o
    bundled = {
        _load(p)[0]["metadata"]["name"]: p
        for p in (BUNDLE / "manifests").glob("*.yaml")
        if p != CSV_PATH
    }
    assert set(bundled) == {o["name"] for o in owned}
    for name, crd_file in _crds().items():
        assert (BUNDLE / "manifests" / name).read_text() == (
            ROOT / "manifests" / "crds" / name
        ).read_text()
        assert crd_file["metadata"]["name"] in bundled


def test_install_strategy_is_manifests_operator() -> None:
    install = _csv()["spec"]["install"]
    assert install["strategy"] == "deployment"
    (dep,) = install["spec"]["deployments"]
    (deployment,) = _load(OPERATOR / "deployment.yaml")
    assert dep["name"] == deployment["metadata"]["name"] == "metallb-operator-controller-manager"
    # The same Deployment, except that OLM issues and mounts the webhook certificate.
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["operator", "--disable-cert-rotation"]
    assert "volumes" not in dep["spec"]["template"]["spec"] and "volumeMounts" not in container
    plain = deployment["spec"]
    plain["template"]["spec"].pop("volumes")
    (plain_container,) = plain["template"]["spec"]["containers"]
    plain_container.pop("volumeMounts")
    plain_container["args"] = container["args"]
    assert dep["spec"] == plain
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    rbac = {d["kind"]: d for d in _load(OPERATOR / "rbac.yaml")}
    assert rbac["ServiceAccount"]["metadata"]["name"] == sa
    (cluster,) = install["spec"]["clusterPermissions"]
    (local,) = install["spec"]["permissions"]
    assert cluster == {"serviceAccountName": sa, "rules": rbac["ClusterRole"]["rules"]}
    assert local == {"serviceAccountName": sa, "rules": rbac["Role"]["rules"]}


def test_webhook_definition_matches_the_operator_webhook() -> None:
    spec = _csv()["spec"]
    (hook,) = spec["webhookdefinitions"]
    (vwc,) = _load(OPERATOR / "validatingwebhookconfiguration.yaml")
    (want,) = vwc["webhooks"]
    assert hook["type"] == "ValidatingAdmissionWebhook"
    assert hook["deploymentName"] in {d["name"] for d in spec["install"]["spec"]["deployments"]}
    assert hook["generateName"] == want["name"]
    assert hook["webhookPath"] == want["clientConfig"]["service"]["path"]
    assert hook["rules"] == want["rules"]
    for key in ("failurePolicy", "sideEffects", "admissionReviewVersions"):
        assert hook[key] == want[key], key
    (container,) = spec["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"][
        "containers"
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert hook["targetPort"] == ports["webhook-server"] == 9443
    (svc,) = _load(OPERATOR / "service.yaml")
    assert hook["containerPort"] == svc["spec"]["ports"][0]["port"]


def test_alm_examples_is_the_sample() -> None:
    csv = _csv()
    examples = json.loads(csv["metadata"]["annotations"]["alm-examples"])
    assert examples == _load(OPERATOR / "metallb.yaml")
    kinds = {o["kind"] for o in csv["spec"]["customresourcedefinitions"]["owned"]}
    assert all(e["kind"] in kinds for e in examples)


def test_bundle_annotations() -> None:
    (doc,) = _load(BUNDLE / "metadata" / "annotations.yaml")
    a = doc["annotations"]
    prefix = "operators.operatorframework.io.bundle"
    assert a[f"{prefix}.mediatype.v1"] == "registry+v1"
    assert a[f"{prefix}.manifests.v1"] == "manifests/"
    assert a[f"{prefix}.metadata.v1"] == "metadata/"
    assert a[f"{prefix}.package.v1"] == "metallb-py-operator"
    assert a[f"{prefix}.channel.default.v1"] in a[f"{prefix}.channels.v1"].split(",")
    assert (BUNDLE / a[f"{prefix}.manifests.v1"]).is_dir()
