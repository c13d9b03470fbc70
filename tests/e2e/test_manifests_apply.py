"""`kubectl apply -k manifests/` works against the embedded API server with the real kubectl and
its default validation: CRDs, RBAC, the webhook configuration and both components."""

from __future__ import annotations

from pathlib import Path

from tests.lab.apiserver import apiserver_fixture

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

apiserver = apiserver_fixture()


def test_kubectl_apply_kustomization(apiserver) -> None:  # type: ignore[no-untyped-def]
    out = apiserver.kubectl("apply", "-k", str(MANIFESTS)).stdout
    assert "deployment.apps/controller created" in out
    assert "daemonset.apps/speaker created" in out
    assert "customresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io created" in out
    got = apiserver.kubectl("get", "deploy,ds", "-n", "metallb-system", "-o", "name").stdout
    assert set(got.split()) == {
        "deployment.apps/controller",
        "deployment.apps/webhook-server",
        "daemonset.apps/speaker",
    }
    # Applying again changes nothing: the manifests are stable under the server's defaulting.
    again = apiserver.kubectl("apply", "-k", str(MANIFESTS)).stdout
    assert "created" not in again
