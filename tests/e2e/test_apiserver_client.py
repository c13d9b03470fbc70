"""kubernetes_asyncio over HTTP against the embedded API server: CRUD, concurrency, watches,
selectors, paging, status semantics, garbage collection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.e2e.test_apiserver_kubectl import CRD
from tests.lab.apiserver import ApiServer, apiserver_fixture, wait_for_async

shared = apiserver_fixture(scope="module")


@pytest.fixture
def apiserver(shared: ApiServer, request: pytest.FixtureRequest) -> ApiServer:
    """One server per module (start-up is the slow part); each test in its own namespace."""
    return shared.in_namespace("t-" + request.node.name.replace("_", "-")[5:40].strip("-"))


# kubernetes_asyncio sends a dict body to custom objects as JSON patch unless told otherwise.
MERGE = "application/merge-patch+json"
dualstack = apiserver_fixture(
    args=["--service-cidr", "10.96.0.0/16", "--service-cidr", "fd00:10:96::/112"]
)


def lb_service(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]},
    }


async def raw(
    s: ApiServer, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, Any, Any]:
    """A plain HTTP request with the admin token, for what the generated client cannot say."""
    headers = {"Authorization": f"Bearer {s.admin_token}", "Content-Type": content_type}
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, s.url + path, data=data, headers=headers, ssl=s.ssl_context()
        ) as resp,
    ):
        text = await resp.text()
        try:
            return resp.status, json.loads(text), resp.headers
        except ValueError:
            return resp.status, text, resp.headers


async def test_service_crud_and_conflicts(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        created = await core.create_namespaced_service(ns, lb_service("web"))
        assert created.spec.cluster_ip and created.metadata.resource_version
        listed = await core.list_namespaced_service(ns, label_selector="app in (web,x)")
        assert [s.metadata.name for s in listed.items] == ["web"]
        assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
        # merge patch, then a stale replace is a 409 Conflict
        await core.patch_namespaced_service("web", ns, {"metadata": {"labels": {"tier": "front"}}})
        stale = created
        stale.metadata.labels = {"app": "web", "tier": "stale"}
        with pytest.raises(ApiException) as err:
            await core.replace_namespaced_service("web", ns, stale)
        assert err.value.status == 409
        assert "the object has been modified" in json.loads(err.value.body or b"{}")["message"]
        # creating it again is 409 AlreadyExists
        with pytest.raises(ApiException) as err:
            await core.create_namespaced_service(ns, lb_service("web"))
        assert (
            err.value.status == 409
            and json.loads(err.value.body or b"{}")["reason"] == "AlreadyExists"
        )
        fresh = await core.read_namespaced_service("web", ns)
        fresh.metadata.labels["tier"] = "back"
        replaced = await core.replace_namespaced_service("web", ns, fresh)
        assert replaced.metadata.labels["tier"] == "back"
        await core.delete_namespaced_service("web", ns)
        with pytest.raises(ApiException) as err:
            await core.read_namespaced_service("web", ns)
        assert err.value.status == 404


async def test_errors_are_status_objects(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    status, body, _ = await raw(
        apiserver,
        "POST",
        f"/api/v1/namespaces/{ns}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "Bad_Name"},
            "spec": {"ports": []},
        },
    )
    assert status == 422 and body["kind"] == "Status" and body["reason"] == "Invalid"
    assert {c["field"] for c in body["details"]["causes"]} >= {"metadata.name", "spec.ports"}
    status, body, _ = await raw(apiserver, "POST", f"/api/v1/namespaces/{ns}/services", b"{")
    assert status == 400 and body["reason"] == "BadRequest"
    status, body, _ = await raw(
        apiserver,
        "PATCH",
        f"/api/v1/namespaces/{ns}/services/x",
        "{}",
        "application/apply-patch+cbor",
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    status, body, _ = await raw(
        apiserver,
        "PATCH",
        f"/api/v1/namespaces/{ns}/services/x",
        "{}",
        "application/apply-patch+yaml",
    )
    assert status == 400 and "fieldManager" in body["message"], body
    status, body, _ = await raw(apiserver, "GET", "/api/v1/namespaces/nope/services/x")
    assert status == 404 and body["details"]["name"] == "x"
    status, body, _ = await raw(
        apiserver,
        "POST",
        "/api/v1/namespaces/nope/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
    )
    assert status == 404 and 'namespaces "nope" not found' in body["message"]


async def test_status_subresource_semantics(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        await core.create_namespaced_service(ns, lb_service("web"))
        ingress = {"loadBalancer": {"ingress": [{"ip": "198.51.100.200"}]}}
        # the main resource ignores status
        await core.patch_namespaced_service("web", ns, {"status": ingress})
        svc = await core.read_namespaced_service("web", ns)
        assert not svc.status.load_balancer.ingress
        # /status ignores spec but keeps status and metadata edits (the Service strategy)
        await core.patch_namespaced_service_status(
            "web",
            ns,
            {
                "status": ingress,
                "spec": {"sessionAffinity": "ClientIP"},
                "metadata": {"annotations": {"seen": "yes"}},
            },
        )
        svc = await core.read_namespaced_service("web", ns)
        assert svc.status.load_balancer.ingress[0].ip == "198.51.100.200"
        assert svc.spec.session_affinity == "None"
        assert svc.metadata.annotations == {"seen": "yes"}
        # a no-op write does not bump the resourceVersion
        again = await core.patch_namespaced_service_status("web", ns, {"status": ingress})
        assert again.metadata.resource_version == svc.metadata.resource_version


async def test_custom_resource_via_client(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    import yaml

    async with apiserver.client() as api:
        ext: Any = k8s.ApiextensionsV1Api(api)
        await ext.create_custom_resource_definition(yaml.safe_load(CRD))
        co: Any = k8s.CustomObjectsApi(api)

        async def established() -> bool:
            crd = await ext.read_custom_resource_definition("widgets.example.com")
            return any(
                c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
            )

        await wait_for_async(established, 10, what="CRD established")
        body = {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 2},
        }
        made = await co.create_namespaced_custom_object("example.com", "v1", ns, "widgets", body)
        assert made["spec"] == {"size": 2, "color": "blue"}
        await co.patch_namespaced_custom_object_status(
            "example.com",
            "v1",
            ns,
            "widgets",
            "w1",
            {"status": {"phase": "Ready"}, "metadata": {"labels": {"ignored": "yes"}}},
            _content_type=MERGE,
        )
        got = await co.get_namespaced_custom_object("example.com", "v1", ns, "widgets", "w1")
        assert got["status"] == {"phase": "Ready"}
        assert "ignored" not in (got["metadata"].get("labels") or {})
        stale = dict(made)
        stale["spec"] = {"size": 3}
        with pytest.raises(ApiException) as err:
            await co.replace_namespaced_custom_object(
                "example.com", "v1", ns, "widgets", "w1", stale
            )
        assert err.value.status == 409
        with pytest.raises(ApiException) as err:
            await co.patch_namespaced_custom_object(
                "example.com",
                "v1",
                ns,
                "widgets",
                "w1",
                {"spec": {"size": 50}},
                _content_type=MERGE,
            )
        assert err.value.status == 422 and "big widgets must be red" in str(err.value.body)
        listed = await co.list_namespaced_custom_object("example.com", "v1", ns, "widgets")
        assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
        await co.delete_namespaced_custom_object("example.com", "v1", ns, "widgets", "w1")
        listed = await co.list_cluster_custom_object("example.com", "v1", "widgets")
        assert listed["items"] == []


async def test_watch_resume_bookmarks_and_410(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        first = await core.create_namespaced_config_map(
            ns, {"metadata": {"name": "a"}, "data": {"v": "1"}}
        )
        start = first.metadata.resource_version
        await core.patch_namespaced_config_map("a", ns, {"data": {"v": "2"}})
        await core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
        await core.delete_namespaced_config_map("a", ns)
        seen: list[tuple[str, str, str]] = []
        w = k8s_watch.Watch()
        async for ev in w.stream(
            core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=2
        ):
            seen.append(
                (ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version)
            )
            if len(seen) == 3:
                w.stop()
        assert [(t, n) for t, n, _ in seen] == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
        rvs = [int(rv) for *_, rv in seen]
        assert rvs == sorted(rvs) and rvs[0] > int(start)
        # "0" starts with synthetic ADDED events for what exists
        w = k8s_watch.Watch()
        async for ev in w.stream(
            core.list_namespaced_config_map, ns, resource_version="0", timeout_seconds=1
        ):
            assert ev["type"] == "ADDED" and ev["object"].metadata.name == "b"
            w.stop()
        # a resourceVersion older than the history: 410 Gone as an ERROR event
        with pytest.raises(ApiException) as err:
            async for _ in k8s_watch.Watch().stream(
                core.list_namespaced_config_map, ns, resource_version="5", timeout_seconds=1
            ):
                pass
        assert err.value.status == 410
        # a future resourceVersion is refused, never silently resumed
        status, body, _ = await raw(
            apiserver,
            "GET",
            "/api/v1/configmaps?watch=1&resourceVersion=" + str(int(start) + 10**9),
        )
        assert status == 504 and "Too large resource version" in body["message"]
    # bookmarks carry the current resourceVersion when nothing happens
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            apiserver.url + f"/api/v1/namespaces/{ns}/configmaps",
            params={
                "watch": "1",
                "resourceVersion": start,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "3",
            },
            headers={"Authorization": f"Bearer {apiserver.admin_token}"},
            ssl=apiserver.ssl_context(),
        ) as resp,
    ):
        kinds = [json.loads(line)["type"] async for line in resp.content]
    assert kinds[:3] == ["MODIFIED", "ADDED", "DELETED"]


async def test_selectors_and_paging(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        for i in range(7):
            await core.create_namespaced_pod(
                ns,
                {
                    "metadata": {"name": f"p{i}", "labels": {"n": str(i), "even": str(i % 2 == 0)}},
                    "spec": {
                        "nodeName": f"node{i % 2}",
                        "containers": [{"name": "c", "image": "x"}],
                    },
                },
            )
        on0 = await core.list_namespaced_pod(ns, field_selector="spec.nodeName=node0")
        assert sorted(p.metadata.name for p in on0.items) == ["p0", "p2", "p4", "p6"]
        sel = await core.list_pod_for_all_namespaces(label_selector="even=True,n notin (0,2)")
        assert sorted(p.metadata.name for p in sel.items) == ["p4", "p6"]
        names: list[str] = []
        token = None
        while True:
            page = await core.list_namespaced_pod(ns, limit=3, _continue=token)
            names += [p.metadata.name for p in page.items]
            token = page.metadata._continue
            if not token:
                break
        assert names == [f"p{i}" for i in range(7)]
        with pytest.raises(ApiException) as err:
            await core.list_namespaced_pod(ns, field_selector="spec.bogus=1")
        assert err.value.status == 400
        pod = await core.read_namespaced_pod("p0", ns)
        assert pod.status.phase == "Pending"


async def test_garbage_collection(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        owner = await core.create_namespaced_config_map(ns, {"metadata": {"name": "own"}})
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "own",
            "uid": owner.metadata.uid,
            "blockOwnerDeletion": True,
        }
        for name in ("d1", "d2"):
            await core.create_namespaced_secret(
                ns, {"metadata": {"name": name, "ownerReferences": [ref]}}
            )
        # background: the owner goes at once, dependents follow
        await core.delete_namespaced_config_map("own", ns)

        async def secrets_gone() -> bool:
            return not (await core.list_namespaced_secret(ns)).items

        await wait_for_async(secrets_gone, 10, what="dependents collected")
        # foreground: the owner stays (deletionTimestamp) until its dependents are gone
        owner = await core.create_namespaced_config_map(ns, {"metadata": {"name": "fg"}})
        ref = {**ref, "name": "fg", "uid": owner.metadata.uid}
        await core.create_namespaced_secret(
            ns,
            {
                "metadata": {
                    "name": "d3",
                    "ownerReferences": [ref],
                    "finalizers": ["example.com/hold"],
                }
            },
        )
        await core.delete_namespaced_config_map("fg", ns, propagation_policy="Foreground")
        cm = await core.read_namespaced_config_map("fg", ns)
        assert cm.metadata.deletion_timestamp and "foregroundDeletion" in cm.metadata.finalizers
        await core.patch_namespaced_secret("d3", ns, {"metadata": {"finalizers": None}})

        async def owner_gone() -> bool:
            try:
                await core.read_namespaced_config_map("fg", ns)
            except ApiException as exc:
                return exc.status == 404
            return False

        await wait_for_async(owner_gone, 10, what="foreground owner removed")
        # orphan: dependents stay, without the reference
        owner = await core.create_namespaced_config_map(ns, {"metadata": {"name": "or"}})
        ref = {**ref, "name": "or", "uid": owner.metadata.uid}
        await core.create_namespaced_secret(
            ns, {"metadata": {"name": "d4", "ownerReferences": [ref]}}
        )
        await core.delete_namespaced_config_map("or", ns, propagation_policy="Orphan")
        await wait_for_async(_gone(core, "or", ns), 10, what="orphaning owner removed")
        d4 = await core.read_namespaced_secret("d4", ns)
        assert not d4.metadata.owner_references
        # a namespaced owner cannot own a cluster-scoped object: never collected
        owner = await core.create_namespaced_config_map(ns, {"metadata": {"name": "ns"}})
        await core.create_namespace(
            {
                "metadata": {
                    "name": "owned-ns",
                    "ownerReferences": [{**ref, "name": "ns", "uid": owner.metadata.uid}],
                }
            }
        )
        await core.delete_namespaced_config_map("ns", ns)

        async def invalid_reported() -> bool:
            # a cluster-scoped object's events go to "default"
            events = await core.list_namespaced_event(
                "default", field_selector="involvedObject.name=owned-ns"
            )
            return any(e.reason == "OwnerRefInvalidNamespace" for e in events.items)

        await wait_for_async(invalid_reported, 10, what="OwnerRefInvalidNamespace event")
        assert (await core.read_namespace("owned-ns")).metadata.name == "owned-ns"


def _gone(core: k8s.CoreV1Api, name: str, ns: str) -> Any:
    async def check() -> bool:
        try:
            await core.read_namespaced_config_map(name, ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    return check


async def test_namespace_deletion_removes_contents(apiserver: ApiServer) -> None:
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": "team"}})
        await core.create_namespaced_config_map("team", {"metadata": {"name": "c"}})
        await core.delete_namespace("team")
        team = None
        try:
            team = await core.read_namespace("team")
        except ApiException:
            pass
        if team is not None:
            assert team.status.phase == "Terminating"
            with pytest.raises(ApiException) as err:
                await core.create_namespaced_config_map("team", {"metadata": {"name": "d"}})
            assert err.value.status in (403, 404)

        async def gone() -> bool:
            try:
                await core.read_namespace("team")
            except ApiException as exc:
                return exc.status == 404
            return False

        await wait_for_async(gone, 10, what="namespace removed")
        assert not (await core.list_namespaced_config_map("team")).items


async def test_dual_stack_services(dualstack: ApiServer) -> None:
    async with dualstack.client() as api:
        core: Any = k8s.CoreV1Api(api)
        body = lb_service("ds")
        body["spec"]["ipFamilyPolicy"] = "RequireDualStack"
        svc = await core.create_namespaced_service("default", body)
        assert svc.spec.ip_families == ["IPv4", "IPv6"]
        assert svc.spec.cluster_ips[0].startswith("10.96.") and ":" in svc.spec.cluster_ips[1]
        body = lb_service("v6")
        body["spec"]["ipFamilies"] = ["IPv6"]
        svc = await core.create_namespaced_service("default", body)
        assert svc.spec.ip_family_policy == "SingleStack" and ":" in svc.spec.cluster_ip
        taken = lb_service("taken")
        taken["spec"]["ports"][0]["nodePort"] = svc.spec.ports[0].node_port
        with pytest.raises(ApiException) as err:
            await core.create_namespaced_service("default", taken)
        assert err.value.status == 422 and "provided port is already allocated" in str(
            err.value.body
        )


async def test_concurrent_writers_get_conflicts_not_lost_updates(apiserver: ApiServer) -> None:
    ns = apiserver.namespace or "default"
    async with apiserver.client() as api:
        core: Any = k8s.CoreV1Api(api)
        await core.create_namespaced_config_map(
            ns, {"metadata": {"name": "counter"}, "data": {"n": "0"}}
        )

        async def increment() -> int:
            conflicts = 0
            while True:
                cm = await core.read_namespaced_config_map("counter", ns)
                cm.data["n"] = str(int(cm.data["n"]) + 1)
                try:
                    await core.replace_namespaced_config_map("counter", ns, cm)
                    return conflicts
                except ApiException as exc:
                    assert exc.status == 409
                    conflicts += 1

        await asyncio.gather(*(increment() for _ in range(20)))
        cm = await core.read_namespaced_config_map("counter", ns)
        assert cm.data["n"] == "20"
