"""`kubectl metallb explain` on a Snapshot built in memory: the layer-2 reasons the e2e cluster
does not cover (no ready speaker, no local endpoint, not selected by the advertisement,
preference weights), a status object that disagrees with the election, and the event limit."""

from __future__ import annotations

from typing import Any

from l2 import election
from metallb_py.explain import service as sv
from metallb_py.explain.snapshot import Snapshot
from metallb_py.speaker.desired import Options

NS = "metallb-system"
IP = "192.0.2.10"


def _obj(kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> Any:
    return {
        "apiVersion": f"metallb.io/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _node(name: str, **labels: str) -> Any:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}}


def _pod(node: str, ready: bool) -> Any:
    return {
        "metadata": {"name": f"speaker-{node}", "namespace": NS},
        "spec": {"nodeName": node},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def _snapshot(events: int = 0, announcer: str = "node-a") -> Snapshot:
    svc = {
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": IP}]}},
    }
    eps = [
        {"addresses": [f"10.244.0.{i}"], "nodeName": n, "conditions": {"ready": True}}
        for i, n in enumerate(("node-a", "node-b", "node-d", "node-e"))
    ]
    snap = Snapshot(NS)
    snap.services = {"default/web": svc}
    snap.nodes = {
        "node-a": _node("node-a", zone="a"),
        "node-b": _node("node-b", zone="a"),
        "node-c": _node("node-c", zone="a"),  # no endpoint of the Local service
        "node-d": _node("node-d", zone="a"),  # its speaker Pod is not ready
        "node-e": _node("node-e", zone="b"),  # the advertisement selects zone a only
    }
    snap.speaker_pods = [_pod(n, n != "node-d") for n in snap.nodes]
    snap.slices = {"default/web": [{"endpoints": eps}]}
    snap.config_objects = [
        _obj("IPAddressPool", "pool", {"addresses": ["192.0.2.0/24"]}),
        _obj(
            "L2Advertisement",
            "l2",
            {
                "ipAddressPools": ["pool"],
                "nodeSelectors": [{"matchLabels": {"zone": "a"}}],
                "preferredNodeSelectors": [
                    {
                        "weight": 10,
                        "preference": {"matchLabels": {"kubernetes.io/hostname": "node-b"}},
                    }
                ],
            },
        ),
    ]
    snap.l2_statuses = [
        {
            "metadata": {
                "labels": {
                    "metallb.io/service-name": "web",
                    "metallb.io/service-namespace": "default",
                }
            },
            "status": {"node": announcer, "serviceName": "web", "serviceNamespace": "default"},
        }
    ]
    snap.events = {
        "default/web": [
            {
                "type": "Normal",
                "reason": f"R{i}",
                "message": f"event {i}",
                "lastTimestamp": f"2026-01-01T00:00:{i:02d}Z",
            }
            for i in range(events)
        ]
    }
    return snap


def test_layer2_reasons_weights_and_a_disagreeing_status() -> None:
    exp = sv.explain(sv.Cluster(_snapshot(announcer="node-a")), "default/web")
    l2 = exp["layer2"]
    assert l2["elected"] == "node-b"  # weight 10 beats every hash
    rows = {c["node"]: (c["skipped"], c["weight"]) for c in l2["candidates"]}
    assert rows == {
        "node-a": (None, 0),
        "node-b": (None, 10),
        "node-c": ("noLocalEndpoints", 0),
        "node-d": ("notLiveMember", 0),
        "node-e": ("notSelectedByAdvertisement", 0),
    }
    order = [c["node"] for c in l2["candidates"]]
    assert order[0] == "node-b"
    assert order[1:] == election.rank(["node-a", "node-c", "node-d", "node-e"], IP)
    assert exp["problems"] == ["layer 2: node-a reports announcing, the election picks node-b"]
    text = sv.render(exp)
    assert text[:3] == [
        f"Service default/web: {IP} from pool pool",
        "Layer 2: announced by node-a",
        "  election (l2), best first:",
    ]
    assert text[3] == "    node-b weight 10: elected"
    assert "    node-a: candidate (standby)" in text
    assert "    node-d: skipped: notLiveMember (no ready speaker Pod on the node)" in text
    assert not exp["ok"]


def test_events_are_limited_to_the_newest() -> None:
    exp = sv.explain(
        sv.Cluster(_snapshot(events=sv.MAX_EVENTS + 3, announcer="node-b")), "default/web"
    )
    shown = [e["reason"] for e in exp["events"]]
    assert shown == [f"R{i}" for i in range(3, sv.MAX_EVENTS + 3)]
    assert exp["problems"] == [] and exp["ok"]


def test_speaker_flags_change_the_reasons() -> None:
    """With the speakers' --l2-require-node-ready, Nodes without a Ready condition are skipped."""
    options = Options(l2_require_node_ready=True)
    exp = sv.explain(sv.Cluster(_snapshot(), options=options), "default/web")
    skipped = {c["node"]: c["skipped"] for c in exp["layer2"]["candidates"]}
    assert skipped == {
        "node-a": "nodeNotReady",
        "node-b": "nodeNotReady",
        "node-c": "nodeNotReady",
        "node-d": "notLiveMember",
        "node-e": "nodeNotReady",
    }
    assert exp["layer2"]["summary"] == "no node can announce it"
    assert "  no node can announce it" in sv.render(exp)
