"""The controller caches trimmed Services, so its status writes must never send a cached object
back: through `metallb-py apiserver` and the real kubernetes_asyncio client, a Service's labels,
annotations, finalizers, ownerReferences, spec (ports, selector, fields the controller never
reads) and other writers' status conditions survive allocation, orphaning and clearing."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_py.kube.rest import IPADDRESSPOOLS, SERVICES, Rest
from metallb_py.kube.status import StatusWriter, WriteOutcome
from tests.lab.apiserver import ApiServer, apiserver_fixture
from tests.lab.controller_lab import (
    NS,
    Controller,
    client,
    create_pool,
    ingress_ips,
    install_crds,
    start_controller,
    wait_for,
)

apiserver = apiserver_fixture()
POOL_ANN = "metallb.io/ip-allocated-from-pool"
ORPHANED = "metallb-py.io/AddressOrphaned"
PROBE = {
    "type": "example.com/Probed",
    "status": "True",
    "reason": "Reachable",
    "message": "set by another controller",
    "lastTransitionTime": "2026-12-06T00:00:00Z",
}


@pytest.fixture
def controller(apiserver: ApiServer, tmp_path: Path) -> Iterator[Controller]:
    ctl = start_controller(apiserver, tmp_path / "ctl", "--lease-duration", "2")
    yield ctl
    ctl.stop()


def _rich_service(owner_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front", "team": "payments"},
            "annotations": {
                "example.com/owner": "team-a",
                "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Service"}',
                "metallb.io/allow-shared-ip": "web-key",
            },
            "finalizers": ["example.com/keep"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web", "tier": "front"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
            ],
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Local",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "publishNotReadyAddresses": True,
            "allocateLoadBalancerNodePorts": False,
        },
    }


def _assert_kept(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Everything but the controller's own fields is as it was."""
    b, a = before["metadata"], after["metadata"]
    for key in ("labels", "finalizers", "ownerReferences", "uid", "creationTimestamp"):
        assert a.get(key) == b.get(key), key
    mine = {POOL_ANN}
    assert {k: v for k, v in a["annotations"].items() if k not in mine} == {
        k: v for k, v in b["annotations"].items() if k not in mine
    }
    assert after["spec"] == before["spec"]
    assert PROBE in after["status"]["conditions"]


async def _service(rest: Rest) -> dict[str, Any]:
    return await rest.get(SERVICES.path("default", "web"))


async def test_status_writes_keep_what_the_cache_drops(
    apiserver: ApiServer, controller: Controller
) -> None:
    async with client(apiserver) as rest:
        await install_crds(rest)
        owner = await rest.create(
            "/api/v1/namespaces/default/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
        )
        await rest.create(SERVICES.path("default"), _rich_service(owner["metadata"]["uid"]))
        # Another writer's condition, before any pool exists (the controller touches nothing
        # without a configuration).
        await rest.patch(
            SERVICES.path("default", "web", "status"), {"status": {"conditions": [PROBE]}}
        )
        before = await _service(rest)
        assert before["metadata"]["labels"]["team"] == "payments"

        # Allocation: ingress and the pool annotation are written, nothing else changes.
        await create_pool(rest, "a", ["192.0.2.0/30"])

        async def allocated() -> dict[str, Any]:
            svc = await _service(rest)
            return svc if ingress_ips(svc) else {}

        after = await wait_for(allocated, 30, "an IP for the service")
        assert ingress_ips(after) == ["192.0.2.0"]
        assert after["metadata"]["annotations"][POOL_ANN] == "a"
        _assert_kept(before, after)

        # A user edit the controller does not read, then an orphaning: the condition list is
        # rewritten, and still holds the other writer's condition and the new label.
        await rest.patch(
            SERVICES.path("default", "web"), {"metadata": {"labels": {"cost-center": "42"}}}
        )
        before = await _service(rest)
        await create_pool(rest, "b", ["198.51.100.0/30"])
        await rest.delete(IPADDRESSPOOLS.path(NS, "a"))

        async def orphaned() -> dict[str, Any]:
            svc = await _service(rest)
            conds = (svc.get("status") or {}).get("conditions") or []
            return svc if any(c["type"] == ORPHANED for c in conds) else {}

        after = await wait_for(orphaned, 30, "the orphan condition")
        assert ingress_ips(after) == ["192.0.2.0"]
        assert after["metadata"]["labels"]["cost-center"] == "42"
        _assert_kept(before, after)

        # No longer a LoadBalancer: ingress, the pool annotation and the orphan condition go;
        # the rest stays.
        await rest.patch(SERVICES.path("default", "web"), {"spec": {"type": "NodePort"}})
        before = await _service(rest)

        async def cleared() -> dict[str, Any]:
            svc = await _service(rest)
            done = not ingress_ips(svc) and POOL_ANN not in svc["metadata"]["annotations"]
            return svc if done else {}

        after = await wait_for(cleared, 30, "the status to be cleared")
        assert [c["type"] for c in after["status"]["conditions"]] == [PROBE["type"]]
        _assert_kept(before, after)


async def test_status_patch_is_refused_when_the_service_changed(apiserver: ApiServer) -> None:
    """The merge patch carries the cached resourceVersion: a Service edited since is refused
    with a conflict and left as it is, as a PUT would be."""
    async with client(apiserver) as rest:
        svc = await rest.create(
            SERVICES.path("default"),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s", "labels": {"a": "1"}},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            },
        )
        stale_rv = svc["metadata"]["resourceVersion"]
        edited = await rest.patch(
            SERVICES.path("default", "s"), {"metadata": {"labels": {"b": "2"}}}
        )
        writer = StatusWriter(rest)
        patch = {
            "metadata": {"resourceVersion": stale_rv, "annotations": {POOL_ANN: "p"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        }
        result = await writer.patch_status(SERVICES, "default", "s", copy.deepcopy(patch))
        assert result.outcome is WriteOutcome.CONFLICT
        assert await rest.get(SERVICES.path("default", "s")) == edited

        patch["metadata"]["resourceVersion"] = edited["metadata"]["resourceVersion"]
        result = await writer.patch_status(SERVICES, "default", "s", patch)
        assert result.outcome is WriteOutcome.WRITTEN and result.obj is not None
        assert ingress_ips(result.obj) == ["192.0.2.1"]
        assert result.obj["metadata"]["labels"] == {"a": "1", "b": "2"}
        assert result.obj["metadata"]["annotations"] == {POOL_ANN: "p"}
        assert result.obj["spec"] == edited["spec"]
