"""The speaker's informer transforms keep every field the announcement rules read: the desired
state over trimmed objects equals the desired state over the full ones, and the informer applies
the transform to listed, watched and remembered objects alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.kube.informer import Informer
from metallb_py.kube.rest import SERVICES
from metallb_py.speaker import desired as d
from metallb_py.speaker import ingest
from tests.lab.config_objects import bgpadv, l2adv, peer, pool
from tests.unit.test_speaker_desired import config

CFG_BGP = config(
    pool("bgp", "203.0.113.0/24"),
    pool("other", "198.51.100.0/24"),
    peer("r1", peerAddress="192.0.2.1", peerASN=64501),
    bgpadv("web", serviceSelectors=[{"matchLabels": {"tier": "web"}}]),
)
CFG_L2 = config(
    pool("l2", "203.0.113.0/24"),
    l2adv("all", nodeSelectors=[{"matchLabels": {"zone": "a"}}]),
)
NODES = ("n1", "n2", "n3")
JUNK_META = {
    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    "creationTimestamp": "2026-12-06T00:00:00Z",
    "generation": 3,
    "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
}


@st.composite
def full_service(draw: st.DrawFn, i: int) -> dict[str, Any]:
    anns = {"kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 200 + "}"}
    if draw(st.booleans()):
        anns["metallb.io/allow-shared-ip"] = "k"
    if draw(st.booleans()):
        anns["metallb.universe.tf/ip-allocated-from-pool"] = draw(st.sampled_from(["bgp", "l2"]))
    ingress: list[dict[str, Any]] = [
        {"ip": f"{draw(st.sampled_from(['203.0.113', '198.51.100', '192.0.2']))}.{i + 1}"}
        for _ in range(draw(st.integers(0, 2)))
    ]
    if draw(st.booleans()):
        ingress.append({"hostname": "lb.example", "ports": [{"port": 80, "protocol": "TCP"}]})
    spec: dict[str, Any] = {
        "type": draw(st.sampled_from(["LoadBalancer", "LoadBalancer", "ClusterIP"])),
        "externalTrafficPolicy": draw(st.sampled_from(["Cluster", "Local"])),
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "selector": {"app": "x"},
        "clusterIP": "10.96.0.10",
    }
    if draw(st.booleans()):
        spec["loadBalancerClass"] = draw(st.sampled_from(["", "other"]))
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": f"s{i}",
            "namespace": "default",
            "uid": f"uid-{i}",
            "resourceVersion": str(10 + i),
            "labels": {"tier": "web"} if draw(st.booleans()) else {"tier": "db"},
            "annotations": anns,
            **JUNK_META,
        },
        "spec": spec,
        "status": {"loadBalancer": {"ingress": ingress}},
    }


@st.composite
def full_slice(draw: st.DrawFn, i: int) -> dict[str, Any]:
    endpoints = []
    for n in draw(st.lists(st.sampled_from(NODES), max_size=3)):
        cond = {
            k: v
            for k, v in (
                ("ready", draw(st.sampled_from([None, True, False]))),
                ("serving", draw(st.sampled_from([None, True, False]))),
                ("terminating", False),
            )
            if v is not None
        }
        endpoints.append(
            {
                "addresses": draw(st.sampled_from([[], ["10.0.0.1"], ["10.0.0.1", "10.0.0.2"]])),
                "nodeName": n,
                "conditions": cond,
                "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"},
                "zone": "z1",
            }
        )
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": f"s{i}-abcde",
            "namespace": "default",
            "resourceVersion": str(1000 + i),
            "labels": {
                d.SERVICE_NAME_LABEL: f"s{i}",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            **JUNK_META,
        },
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


@st.composite
def full_node(draw: st.DrawFn, name: str) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "zone": draw(st.sampled_from(["a", "b"]))}
    if draw(st.booleans()):
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    conds = [
        {
            "type": "Ready",
            "status": draw(st.sampled_from(["True", "False"])),
            "reason": "KubeletReady",
            "lastHeartbeatTime": "2026-12-06T00:00:00Z",
        }
    ]
    if draw(st.booleans()):
        conds.append({"type": "NetworkUnavailable", "status": "True", "reason": "NoRoute"})
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "resourceVersion": "7", "labels": labels, **JUNK_META},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "conditions": conds,
            "images": [{"names": ["registry/image:tag"], "sizeBytes": 1}] * 20,
            "nodeInfo": {"kubeletVersion": "v1.31.0"},
        },
    }


def _inputs(
    cfg: Any,
    services: list[dict[str, Any]],
    slices: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    opts: d.Options,
) -> d.Inputs:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for s in slices:
        name = s["metadata"]["labels"][d.SERVICE_NAME_LABEL]
        by_service.setdefault(f"default/{name}", []).append(s)
    return d.Inputs(
        config=cfg,
        services={d.service_key(s): s for s in services},
        endpoint_slices=by_service,
        nodes={n["metadata"]["name"]: n for n in nodes},
        node="n1",
        options=opts,
    )


@settings(max_examples=150, deadline=None)
@given(
    st.data(),
    st.sampled_from([CFG_BGP, CFG_L2]),
    st.builds(
        d.Options,
        lb_class=st.sampled_from(["", "other"]),
        ignore_exclude_lb=st.booleans(),
        l2_require_node_ready=st.booleans(),
    ),
)
def test_desired_state_is_the_same_over_trimmed_objects(
    data: st.DataObject, cfg: Any, opts: d.Options
) -> None:
    n = data.draw(st.integers(1, 6))
    services = [data.draw(full_service(i)) for i in range(n)]
    slices = [data.draw(full_slice(i)) for i in range(n)]
    nodes = [data.draw(full_node(name)) for name in NODES]
    full = d.desired_state(_inputs(cfg, services, slices, nodes, opts))
    slim = d.desired_state(
        _inputs(
            cfg,
            [ingest.service(s) for s in services],
            [ingest.endpoint_slice(s) for s in slices],
            [ingest.node(x) for x in nodes],
            opts,
        )
    )
    assert slim == full


def test_trimmed_objects_keep_what_the_cache_and_events_read() -> None:
    svc = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u1",
            "resourceVersion": "5",
            "annotations": {"other/x": "1", "metallb.io/loadBalancerIPs": "192.0.2.1"},
            **JUNK_META,
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}},
    }
    slim = ingest.service(svc)
    assert slim == {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u1",
            "resourceVersion": "5",
            "annotations": {"metallb.io/loadBalancerIPs": "192.0.2.1"},
        },
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
    }
    # Identical endpoint conditions share one dict, and repeated strings one object.
    a, b = (ingest.endpoint_slice({"endpoints": [{"conditions": {"ready": True}}]}) for _ in "ab")
    assert a["endpoints"][0]["conditions"] is b["endpoints"][0]["conditions"]
    x = ingest.service({"metadata": {"namespace": "".join(["de", "fault"])}})
    y = ingest.service({"metadata": {"namespace": "".join(["def", "ault"])}})
    assert x["metadata"]["namespace"] is y["metadata"]["namespace"]


class _Rest:
    """Just enough of Rest for an Informer: one list page, then a scripted watch."""

    def __init__(self, items: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        self.items = items
        self.events = events

    async def get(self, path: str, query: Any = None) -> dict[str, Any]:
        return {"items": self.items, "metadata": {"resourceVersion": "1"}}

    async def watch(
        self,
        path: str,
        query: Any,
        timeout: int,  # noqa: ASYNC109 (the signature of Rest.watch)
    ) -> AsyncIterator[dict[str, Any]]:
        for event in self.events:
            yield event
        await asyncio.sleep(3600)


def test_informer_applies_the_transform_to_lists_watches_and_writes() -> None:
    listed = {"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "1"}, "spec": {}}
    watched = {"metadata": {"name": "b", "namespace": "ns", "resourceVersion": "2"}, "spec": {}}
    written = {"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "3"}, "spec": {}}
    seen: list[dict[str, Any] | None] = []

    def tag(obj: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": obj["metadata"], "trimmed": obj["kind"]}

    async def main() -> None:
        rest = _Rest([listed], [{"type": "ADDED", "object": watched}])
        inf = Informer(rest, SERVICES, transform=tag)  # type: ignore[arg-type]
        inf.add_handler(lambda _k, _o, new: seen.append(new))
        stop = asyncio.Event()
        task = asyncio.create_task(inf.run(stop))
        for _ in range(100):
            if len(inf.cache) == 2:
                break
            await asyncio.sleep(0.01)
        inf.remember(dict(written, kind="Service"))
        stop.set()
        await task
        assert {k: v.get("trimmed") for k, v in inf.cache.items()} == {
            "ns/a": "Service",
            "ns/b": "Service",
            "ns/c": "Service",
        }

    asyncio.run(main())
    assert [o and o.get("trimmed") for o in seen] == ["Service", "Service"]
