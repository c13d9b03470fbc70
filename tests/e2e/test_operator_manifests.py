"""The operator's manifests and everything `render` produces are accepted by the embedded API
server through the real kubectl with its default (strict) validation."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from metallb_py.operator.env import OperatorEnv
from metallb_py.operator.render import render
from tests.lab.apiserver import ApiServer, apiserver_fixture
from tests.unit.test_operator_render import FULL_SPEC

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

apiserver = apiserver_fixture()


def test_kubectl_apply_operator_kustomization(apiserver: ApiServer) -> None:
    out = apiserver.kubectl("apply", "-k", str(MANIFESTS / "operator")).stdout
    for line in (
        "namespace/metallb-system created",
        "customresourcedefinition.apiextensions.k8s.io/metallbs.metallb.io created",
        "serviceaccount/manager-account created",
        "clusterrole.rbac.authorization.k8s.io/metallb-operator-manager-role created",
        "role.rbac.authorization.k8s.io/metallb-operator-manager-role created",
        "service/metallb-operator-webhook-service created",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/"
        "metallb-operator-webhook-configuration created",
        "deployment.apps/metallb-operator-controller-manager created",
    ):
        assert line in out, out
    assert len([ln for ln in out.splitlines() if "customresourcedefinition" in ln]) == 12
    again = apiserver.kubectl("apply", "-k", str(MANIFESTS / "operator")).stdout
    assert "created" not in again
    # The sample is valid under the CRD's schema. Its webhook (the operator) is not running
    # here, and it fails closed, so take it out of the way first.
    apiserver.kubectl(
        "delete", "validatingwebhookconfiguration", "metallb-operator-webhook-configuration"
    )
    sample = apiserver.kubectl("apply", "-f", str(MANIFESTS / "operator" / "metallb.yaml"))
    assert "metallb.metallb.io/metallb created" in sample.stdout


def test_every_rendered_object_is_accepted(apiserver: ApiServer) -> None:
    """Defaults and a spec using every field; NetworkPolicy is not served by the embedded
    server (its shape is checked against the Kubernetes types in the unit test)."""
    apiserver.kubectl("create", "namespace", "metallb-system")
    for spec in (None, FULL_SPEC):
        objs = render(spec, OperatorEnv("metallb-system", network_policies=False))
        out = apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
        assert "Warning" not in out.stderr, out.stderr
    got = apiserver.kubectl(
        "get", "deploy,ds,sa,role,rolebinding", "-n", "metallb-system", "-o", "name"
    ).stdout.split()
    assert "daemonset.apps/speaker" in got and "deployment.apps/controller" in got
    ds = json.loads(
        apiserver.kubectl("get", "ds", "speaker", "-n", "metallb-system", "-o", "json").stdout
    )
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["runAsUser"] == 0
    assert "--lb-class=example.com/lb" in container["args"]
