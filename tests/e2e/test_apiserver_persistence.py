"""State kept with --data survives a restart (and a crash) with resourceVersions intact; an
in-memory server's restart sends old watchers 410 Gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.e2e.test_apiserver_kubectl import CRD, widget
from tests.lab.apiserver import running_apiserver


async def test_restart_with_data_keeps_objects_and_versions(tmp_path: Path) -> None:
    data = tmp_path / "state.db"
    work = tmp_path / "srv"
    with running_apiserver(data=data, workdir=work) as s:
        s.kubectl("apply", "-f", "-", input=CRD)
        s.kubectl("wait", "--for", "condition=established", "crd/widgets.example.com")
        s.kubectl("create", "-f", "-", input=widget("w1", size=2))
        async with s.client() as api:
            core: Any = k8s.CoreV1Api(api)
            svc = await core.create_namespaced_service(
                "default",
                {
                    "metadata": {"name": "web"},
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
                },
            )
            await core.patch_namespaced_service_status(
                "web",
                "default",
                {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.200"}]}}},
            )
            before = await core.read_namespaced_service("web", "default")
        w1_before = json.loads(s.kubectl("get", "wd", "w1", "-o", "json").stdout)
    # a crash (SIGKILL) right after writes loses nothing: one transaction per write
    with running_apiserver(data=data, workdir=work) as s:
        s.kubectl(
            "create",
            "-f",
            "-",
            input=json.dumps(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restart"}}
            ),
        )
        s.kill()
    with running_apiserver(data=data, workdir=work) as s:
        async with s.client() as api:
            core = k8s.CoreV1Api(api)
            after = await core.read_namespaced_service("web", "default")
            assert after.metadata.resource_version == before.metadata.resource_version
            assert after.metadata.uid == before.metadata.uid == svc.metadata.uid
            assert after.spec.cluster_ip == before.spec.cluster_ip
            assert after.status.load_balancer.ingress[0].ip == "198.51.100.200"
            assert await core.read_namespaced_config_map("after-restart", "default")
            # the restored allocation is not handed out twice
            other = await core.create_namespaced_service(
                "default", {"metadata": {"name": "other"}, "spec": {"ports": [{"port": 80}]}}
            )
            assert other.spec.cluster_ip != after.spec.cluster_ip
            assert int(other.metadata.resource_version) > int(after.metadata.resource_version)
            # history does not survive: a watch from before the restart must relist
            with pytest.raises(ApiException) as err:
                async for _ in k8s_watch.Watch().stream(
                    core.list_namespaced_service,
                    "default",
                    resource_version=str(int(before.metadata.resource_version) - 1),
                    timeout_seconds=1,
                ):
                    pass
            assert err.value.status == 410
        w1_after = json.loads(s.kubectl("get", "wd", "w1", "-o", "json").stdout)
        assert w1_after == w1_before  # the CRD is served again, the object unchanged


async def test_in_memory_restart_gives_410(tmp_path: Path) -> None:
    with running_apiserver(workdir=tmp_path / "a") as s:
        async with s.client() as api:
            core: Any = k8s.CoreV1Api(api)
            cm = await core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
            old_rv = cm.metadata.resource_version
    with running_apiserver(workdir=tmp_path / "b") as s:
        async with s.client() as api:
            core = k8s.CoreV1Api(api)
            with pytest.raises(ApiException) as err:
                async for _ in k8s_watch.Watch().stream(
                    core.list_namespaced_config_map,
                    "default",
                    resource_version=old_rv,
                    timeout_seconds=1,
                ):
                    pass
            assert err.value.status == 410
