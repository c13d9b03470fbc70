"""Server-side apply against a running `metallb-py apiserver`: the real kubectl
(`apply --server-side`, `--force-conflicts`, `--show-managed-fields`) and kubernetes_asyncio
(`_content_type="application/apply-patch+yaml"`), as the operator will use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client as k8s

from tests.lab.apiserver import ApiServer, apiserver_fixture

shared = apiserver_fixture(scope="module")
ROOT = Path(__file__).resolve().parents[2]
APPLY = "application/apply-patch+yaml"
MANAGER = "metallb-operator"


@pytest.fixture
def apiserver(shared: ApiServer, request: pytest.FixtureRequest) -> ApiServer:
    return shared.in_namespace("t-" + request.node.name.replace("_", "-")[5:40].strip("-"))


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1
        env:
        - {name: A, value: "1"}
"""


def rv_of(s: ApiServer, what: str) -> str:
    return s.kubectl("get", what, "-o", "jsonpath={.metadata.resourceVersion}").stdout


def test_kubectl_server_side_apply(apiserver: ApiServer) -> None:
    out = apiserver.kubectl("apply", "--server-side", "-f", "-", input=DEPLOYMENT).stdout
    assert "deployment.apps/web serverside-applied" in out
    rv = rv_of(apiserver, "deploy/web")
    apiserver.kubectl("apply", "--server-side", "-f", "-", input=DEPLOYMENT)
    assert rv_of(apiserver, "deploy/web") == rv  # unchanged: nothing written

    # Another manager changes replicas (kubectl patch records an Update entry).
    apiserver.kubectl("patch", "deploy/web", "-p", '{"spec":{"replicas":5}}')
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    bad = apiserver.kubectl("apply", "--server-side", "-f", "-", input=changed, check=False)
    assert bad.returncode != 0
    assert "Apply failed with 1 conflict" in bad.stderr and ".spec.replicas" in bad.stderr
    apiserver.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=changed)
    assert apiserver.kubectl("get", "deploy/web", "-o", "jsonpath={.spec.replicas}").stdout == "3"

    # An update of the applied configuration; the env var it no longer sends goes away.
    updated = changed.replace("nginx:1", "nginx:2").split("        env:")[0]
    apiserver.kubectl("apply", "--server-side", "-f", "-", input=updated)
    got = json.loads(apiserver.kubectl("get", "deploy/web", "-o", "json").stdout)
    container = got["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:2" and not container.get("env")

    shown = yaml.safe_load(
        apiserver.kubectl("get", "deploy/web", "-o", "yaml", "--show-managed-fields").stdout
    )
    entries = {(e["manager"], e["operation"]): e for e in shown["metadata"]["managedFields"]}
    applied = entries[("kubectl", "Apply")]
    assert applied["fieldsType"] == "FieldsV1" and applied["apiVersion"] == "apps/v1"
    containers = applied["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(containers['k:{"name":"web"}']) >= {".", "f:image", "f:name"}
    hidden = yaml.safe_load(apiserver.kubectl("get", "deploy/web", "-o", "yaml").stdout)
    assert "managedFields" not in hidden["metadata"]


def test_kubectl_client_side_writers_record_update_entries(apiserver: ApiServer) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n"
    apiserver.kubectl("apply", "-f", "-", input=cm)
    apiserver.kubectl("label", "cm/c", "team=x")
    got = json.loads(apiserver.kubectl("get", "cm/c", "-o", "json", "--show-managed-fields").stdout)
    managers = {(e["manager"], e["operation"]) for e in got["metadata"]["managedFields"]}
    assert ("kubectl-client-side-apply", "Update") in managers
    assert ("kubectl-label", "Update") in managers
    # Applying over a client-side-applied field with another value conflicts.
    changed = cm.replace("'1'", "'2'")
    bad = apiserver.kubectl("apply", "--server-side", "-f", "-", input=changed, check=False)
    assert bad.returncode != 0 and "conflict" in bad.stderr


# -- kubernetes_asyncio ----------------------------------------------------------------------------


def deployment(ns: str, image: str = "nginx:1") -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEPLOYMENT.replace("nginx:1", image))
    doc["metadata"]["namespace"] = ns
    return doc


def daemonset(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "speaker", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "speaker"}},
            "template": {
                "metadata": {"labels": {"app": "speaker"}},
                "spec": {
                    "hostNetwork": True,
                    "containers": [
                        {
                            "name": "speaker",
                            "image": "metallb-py:dev",
                            "ports": [{"name": "monitoring", "containerPort": 7472}],
                        }
                    ],
                },
            },
        },
    }


def cluster_role(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}],
    }


def pool(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "pool", "namespace": ns},
        "spec": {"addresses": ["192.0.2.0/28"], "autoAssign": True},
    }


async def watch_events(s: ApiServer, path: str, rv: str, seconds: int = 1) -> list[Any]:
    """The events a watch from `rv` sees within `seconds`."""
    url = f"{s.url}{path}?watch=1&resourceVersion={rv}&timeoutSeconds={seconds}"
    headers = {"Authorization": f"Bearer {s.admin_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, ssl=s.ssl_context()) as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def apply_custom(custom: Any, ns: str, obj: dict[str, Any], opts: dict[str, Any]) -> Any:
    """CustomObjectsApi maps only 200 to a body: an apply that creates (201) returns None, as it
    would against a real server, so read the object back then."""
    args = ("metallb.io", "v1beta1", ns, "ipaddresspools", obj["metadata"]["name"])
    got = await custom.patch_namespaced_custom_object(*args, obj, **opts)
    return got if got is not None else await custom.get_namespaced_custom_object(*args)


async def test_client_applies_builtin_and_custom_objects(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    crd = (ROOT / "manifests/crds/metallb.io_ipaddresspools.yaml").read_text()
    apiserver.kubectl("apply", "--server-side", "-f", "-", input=crd)
    apiserver.kubectl("wait", "--for=condition=Established", "crd/ipaddresspools.metallb.io")
    opts = {"field_manager": MANAGER, "force": True, "_content_type": APPLY}
    async with apiserver.client() as api:
        apps: Any = k8s.AppsV1Api(api)
        rbac: Any = k8s.RbacAuthorizationV1Api(api)
        custom: Any = k8s.CustomObjectsApi(api)
        cases: list[tuple[Any, Any, str]] = [
            (
                lambda: apps.patch_namespaced_deployment("web", ns, deployment(ns), **opts),
                lambda o: o.metadata,
                f"/apis/apps/v1/namespaces/{ns}/deployments",
            ),
            (
                lambda: apps.patch_namespaced_daemon_set("speaker", ns, daemonset(ns), **opts),
                lambda o: o.metadata,
                f"/apis/apps/v1/namespaces/{ns}/daemonsets",
            ),
            (
                lambda: rbac.patch_cluster_role(
                    f"{ns}-reader", cluster_role(f"{ns}-reader"), **opts
                ),
                lambda o: o.metadata,
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            ),
            (
                lambda: apply_custom(custom, ns, pool(ns), opts),
                lambda o: k8s.V1ObjectMeta(
                    resource_version=o["metadata"]["resourceVersion"],
                    managed_fields=o["metadata"]["managedFields"],
                ),
                f"/apis/metallb.io/v1beta1/namespaces/{ns}/ipaddresspools",
            ),
        ]
        rvs = []
        for call, meta_of, path in cases:
            first = meta_of(await call())  # created by the apply
            managers = [
                (e["manager"], e["operation"]) if isinstance(e, dict) else (e.manager, e.operation)
                for e in first.managed_fields
            ]
            assert managers == [(MANAGER, "Apply")], path
            again = meta_of(await call())
            assert again.resource_version == first.resource_version, path
            assert await watch_events(apiserver, path, first.resource_version) == [], path
            rvs.append(first.resource_version)

        # A change is written once, and seen by a watch once.
        changed = await apps.patch_namespaced_deployment(
            "web", ns, deployment(ns, "nginx:2"), **opts
        )
        assert changed.spec.template.spec.containers[0].image == "nginx:2"
        assert changed.metadata.resource_version != rvs[0]
        events = await watch_events(apiserver, f"/apis/apps/v1/namespaces/{ns}/deployments", rvs[0])
        assert [e["type"] for e in events] == ["MODIFIED"]


async def test_client_apply_conflict_without_force(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"k": "a"},
        }
        await core.patch_namespaced_config_map(
            "c", ns, cm, field_manager="one", _content_type=APPLY
        )
        cm["data"] = {"k": "b"}
        with pytest.raises(k8s.ApiException) as err:
            await core.patch_namespaced_config_map(
                "c", ns, cm, field_manager="two", _content_type=APPLY
            )
        assert err.value.status == 409
        body = json.loads(err.value.body or b"{}")
        assert body["details"]["causes"] == [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "one" using v1',
                "field": ".data.k",
            }
        ]
        # Without a fieldManager the apply is refused.
        with pytest.raises(k8s.ApiException) as err:
            await core.patch_namespaced_config_map("c", ns, cm, _content_type=APPLY)
        assert err.value.status == 400
