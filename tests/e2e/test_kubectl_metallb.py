"""`kubectl metallb explain|status` against the embedded API server with a real controller.

One cluster holds every case: two pools (one pinned to namespace team-a with two addresses, one
single address that is never auto-assigned), Services that get an IP, find no pool, find the
pool full, clash over a shared IP, or ask for an IP outside every pool. The speakers' view
(Nodes, EndpointSlices, ServiceL2Status, ServiceBGPStatus, BGPSessionState) is written directly,
as speakers would. Every output is checked line by line; the last test runs the real kubectl,
which finds `kubectl-metallb` on PATH as a plugin.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_py.explain.cli import main as plugin_main
from metallb_py.kube.rest import (
    BGPADVERTISEMENTS,
    BGPPEERS,
    BGPSESSIONSTATES,
    ENDPOINTSLICES,
    L2ADVERTISEMENTS,
    NAMESPACES,
    NODES,
    SERVICEBGPSTATUSES,
    SERVICEL2STATUSES,
    SERVICES,
    Resource,
    Rest,
)
from tests.lab.apiserver import KUBECTL, ApiServer, running_apiserver
from tests.lab.controller_lab import (
    NS,
    Controller,
    client,
    create_pool,
    install_crds,
    service_body,
    start_controller,
    wait_for,
)

BIN = Path(sys.executable).parent
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    workdir = tmp_path_factory.mktemp("kubectl-metallb")
    with running_apiserver(workdir=workdir / "api") as server:
        ctl = start_controller(server, workdir / "ctl", "--lease-duration", "2")
        try:
            asyncio.run(_populate(server, ctl))
            yield server
        finally:
            ctl.stop()


async def _create(rest: Rest, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """Create, then write `status` through the status subresource (create ignores it)."""
    meta = obj["metadata"]
    created = await rest.create(resource.path(meta.get("namespace")), obj)
    if "status" in obj:
        created["status"] = obj["status"]
        path = resource.path(meta.get("namespace"), meta["name"], "status")
        created = await rest.replace(path, created)
    return created


def _metallb(kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> Any:
    return {
        "apiVersion": f"metallb.io/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _node(name: str, labels: dict[str, str] | None = None, unavailable: bool = False) -> Any:
    conds = [{"type": "Ready", "status": "True"}]
    if unavailable:
        conds.append({"type": "NetworkUnavailable", "status": "True"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "status": {"conditions": conds},
    }


def _slice(svc: str, namespace: str, node: str) -> Any:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-eps",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.0.10"], "nodeName": node, "conditions": {"ready": True}}
        ],
    }


def _status_obj(kind: str, name: str, labels: dict[str, str], status: dict[str, Any]) -> Any:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "status": status,
    }


def _svc_labels(node: str, ns: str, name: str) -> dict[str, str]:
    return {
        "metallb.io/node": node,
        "metallb.io/service-name": name,
        "metallb.io/service-namespace": ns,
    }


async def _svc(rest: Rest, name: str, namespace: str = "default", **kw: Any) -> None:
    await rest.create(SERVICES.path(namespace), service_body(name, namespace, **kw))


async def _ips(rest: Rest, name: str, namespace: str) -> list[str]:
    svc = await rest.get(SERVICES.path(namespace, name))
    return [e["ip"] for e in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress", [])]


async def _populate(server: ApiServer, ctl: Controller) -> None:
    async with client(server) as rest:
        await install_crds(rest)
        await rest.create(
            NAMESPACES.path(),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
        )
        await create_pool(
            rest,
            "pool-a",
            ["192.0.2.10-192.0.2.11"],
            serviceAllocation={"namespaces": ["team-a"]},
        )
        await create_pool(rest, "pool-b", ["198.51.100.20/32"], autoAssign=False)
        await rest.create(
            L2ADVERTISEMENTS.path(NS),
            _metallb("L2Advertisement", "l2-a", {"ipAddressPools": ["pool-a"]}),
        )
        for name, addr in (("peer-1", "10.0.0.1"), ("peer-2", "10.0.0.2")):
            spec = {"myASN": 64512, "peerASN": 64500, "peerAddress": addr}
            await rest.create(BGPPEERS.path(NS), _metallb("BGPPeer", name, spec, "v1beta2"))
        await rest.create(
            BGPADVERTISEMENTS.path(NS),
            _metallb(
                "BGPAdvertisement",
                "bgp-b",
                {"ipAddressPools": ["pool-b"], "communities": ["64500:100"], "localPref": 150},
            ),
        )
        await _create(rest, NODES, _node("node-a"))
        await _create(rest, NODES, _node("node-b", unavailable=True))
        await _create(rest, NODES, _node("node-c", {EXCLUDE: ""}))

        await _svc(rest, "web", "team-a")
        await wait_for(lambda: _ips(rest, "web", "team-a"), 30, "web's IP")
        await _svc(rest, "second", "team-a", port=81)
        await wait_for(lambda: _ips(rest, "second", "team-a"), 30, "second's IP")
        await _svc(rest, "third", "team-a", port=82)
        await _svc(rest, "lost")
        await _svc(rest, "outside", loadBalancerIP="203.0.113.99", port=83)
        shared = {"metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "198.51.100.20"}
        await _svc(rest, "share-1", annotations=shared)
        await wait_for(lambda: _ips(rest, "share-1", "default"), 30, "share-1's IP")
        await _svc(rest, "share-2", annotations=shared)

        await _create(rest, ENDPOINTSLICES, _slice("web", "team-a", "node-a"))
        await _create(rest, ENDPOINTSLICES, _slice("share-1", "default", "node-a"))
        await _create(
            rest,
            SERVICEL2STATUSES,
            _status_obj(
                "ServiceL2Status",
                "l2-web-node-a",
                _svc_labels("node-a", "team-a", "web"),
                {"node": "node-a", "serviceName": "web", "serviceNamespace": "team-a"},
            ),
        )
        await _create(
            rest,
            SERVICEBGPSTATUSES,
            _status_obj(
                "ServiceBGPStatus",
                "bgp-share-1-node-a",
                _svc_labels("node-a", "default", "share-1"),
                {
                    "node": "node-a",
                    "serviceName": "share-1",
                    "serviceNamespace": "default",
                    "peers": ["peer-1"],
                },
            ),
        )
        sessions = (
            ("peer-1", "10.0.0.1", "Established", 1, ""),
            ("peer-2", "10.0.0.2", "Active", 0, "connect: connection refused"),
        )
        for peer, addr, state, sent, error in sessions:
            status: dict[str, Any] = {
                "node": "node-a",
                "peer": peer,
                "peerAddress": addr,
                "state": state,
                "prefixesSent": sent,
                "prefixesReceived": 0,
                "bfdState": "Disabled",
            }
            if error:
                status["lastError"] = error
            labels = {"metallb.io/node": "node-a", "metallb.io/peer": peer}
            await _create(
                rest,
                BGPSESSIONSTATES,
                _status_obj("BGPSessionState", f"node-a-{peer}", labels, status),
            )

        async def failed_everywhere() -> bool:
            page = await rest.get("/api/v1/events")
            failed = {
                (e["involvedObject"]["namespace"], e["involvedObject"]["name"])
                for e in page.get("items") or []
                if e.get("reason") == "AllocationFailed"
            }
            want = {("team-a", "third"), ("default", "lost"), ("default", "outside")}
            return want <= failed and ("default", "share-2") in failed

        await wait_for(failed_everywhere, 30, "the controller to fail the four pending services")


def explain(
    server: ApiServer, *args: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    code = plugin_main(["explain", "svc", *args, "--kubeconfig", str(server.kubeconfig)])
    out = capsys.readouterr().out
    return code, out.splitlines()


def test_explain_assigned_ip_and_layer2_election(
    cluster: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = explain(cluster, "web", "-n", "team-a", capsys=capsys)
    assert lines == [
        "Service team-a/web: 192.0.2.10 from pool pool-a",
        "Layer 2: announced by node-a",
        "  election (l2-a), best first:",
        f"    node-c: skipped: nodeLabeledExcludeBalancers (node has the label {EXCLUDE})",
        "    node-b: skipped: nodeNetworkUnavailable (node condition NetworkUnavailable is True)",
        "    node-a: elected",
        "Events:",
        '  Normal IPAllocated: Assigned IP ["192.0.2.10"]',
    ], "\n".join(lines)
    assert code == 0


def test_explain_no_pool_admits_the_namespace(
    cluster: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = explain(cluster, "lost", capsys=capsys)
    assert lines == [
        "Service default/lost: no IP: no available IPs",
        "  pool pool-a: refused: namespace default is not admitted by serviceAllocation "
        "(namespaces, namespaceSelectors)",
        "  pool pool-b: refused: autoAssign is false: used only when a service asks for it",
        "Events:",
        "  Warning AllocationFailed: Failed to allocate IP for 'default/lost': no available IPs",
    ], "\n".join(lines)
    assert code == 1


def test_explain_pool_exhausted(cluster: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = explain(cluster, "team-a/third", capsys=capsys)
    assert lines == [
        "Service team-a/third: no IP: no available IPs",
        "  pool pool-a: refused: no free IPv4 address (2 of 2 in use)",
        "  pool pool-b: refused: autoAssign is false: used only when a service asks for it",
        "Events:",
        "  Warning AllocationFailed: Failed to allocate IP for 'team-a/third': no available IPs",
    ], "\n".join(lines)
    assert code == 1


def test_explain_sharing_conflict(cluster: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = explain(cluster, "share-2", "--namespace", "default", capsys=capsys)
    clash = "port TCP/80 is already in use on 198.51.100.20 by default/share-1"
    assert lines == [
        f"Service default/share-2: no IP: {clash}",
        "  requests: IPs 198.51.100.20; sharing key k",
        "  pool pool-a: refused: does not contain the requested 198.51.100.20",
        f"  pool pool-b: refused: {clash}",
        "Events:",
        f"  Warning AllocationFailed: Failed to allocate IP for 'default/share-2': {clash}",
    ], "\n".join(lines)
    assert code == 1


def test_explain_requested_ip_outside_every_pool(
    cluster: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = explain(cluster, "outside", capsys=capsys)
    assert lines == [
        "Service default/outside: no IP: requested 203.0.113.99 is outside every pool",
        "  requests: IPs 203.0.113.99",
        "  pool pool-a: refused: does not contain the requested 203.0.113.99",
        "  pool pool-b: refused: does not contain the requested 203.0.113.99",
        "Events:",
        "  Warning AllocationFailed: Failed to allocate IP for 'default/outside': "
        "['203.0.113.99'] is not allowed in config",
    ], "\n".join(lines)
    assert code == 1


def test_explain_bgp_with_one_session_down(
    cluster: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = explain(cluster, "share-1", capsys=capsys)
    route = "198.51.100.20/32 communities 64500:100 localPref 150"
    assert lines == [
        "Service default/share-1: 198.51.100.20 from pool pool-b",
        "  requests: IPs 198.51.100.20; sharing key k",
        "BGP: announced by node-a to peer-1",
        f"  node-a -> peer-1 (Established): {route}",
        f"  node-a -> peer-2 (Active, last error: connect: connection refused): {route}",
        "  node-b: not announcing: nodeNetworkUnavailable (node condition NetworkUnavailable is "
        "True)",
        f"  node-c: not announcing: nodeLabeledExcludeBalancers (node has the label {EXCLUDE})",
        "Events:",
        '  Normal IPAllocated: Assigned IP ["198.51.100.20"]',
        "Problems:",
        "  - BGP: session node-a/peer-2 is Active: connect: connection refused; the prefixes do "
        "not reach that peer",
    ], "\n".join(lines)
    assert code == 1


def test_explain_json_for_scripts(cluster: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = explain(cluster, "share-1", "-o", "json", capsys=capsys)
    data = json.loads("\n".join(lines))
    assert code == 1
    assert data["allocation"]["state"] == "assigned"
    assert data["allocation"]["ips"] == ["198.51.100.20"]
    assert data["layer2"] is None
    assert data["bgp"]["announcedBy"] == [{"node": "node-a", "peers": ["peer-1"]}]
    node_a = next(n for n in data["bgp"]["nodes"] if n["node"] == "node-a")
    assert [(p["peer"], p["state"]) for p in node_a["peers"]] == [
        ("peer-1", "Established"),
        ("peer-2", "Active"),
    ]
    assert node_a["peers"][0]["prefixes"] == [
        {"prefix": "198.51.100.20/32", "communities": ["64500:100"], "localPref": 150}
    ]
    assert len(data["problems"]) == 1


def test_status_overview(cluster: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = plugin_main(["status", "--kubeconfig", str(cluster.kubeconfig)])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Configuration: Valid (controller)",
        "Pools:",
        "  NAME    IPV4 USED  IPV6 USED  SERVICES  AUTO-ASSIGN",
        "  pool-a  2/2        -          2         yes",
        "  pool-b  1/1        -          1         no",
        "Services: 7 LoadBalancer, 3 with an IP, 4 pending",
        "BGP sessions:",
        "  NODE    PEER    ADDRESS   STATE        SENT  RECEIVED  BFD",
        "  node-a  peer-1  10.0.0.1  Established  1     0         Disabled",
        "  node-a  peer-2  10.0.0.2  Active       0     0         Disabled",
        "Layer 2 announcements per node: node-a 1",
        "Problems:",
        "  - pool pool-a is full (2 of 2 in use)",
        "  - pool pool-b is full (1 of 1 in use)",
        "  - default/lost has no IP: no available IPs",
        "  - default/outside has no IP: ['203.0.113.99'] is not allowed in config",
        "  - default/share-2 has no IP: port TCP/80 is already in use on 198.51.100.20 by "
        "default/share-1",
        "  - team-a/third has no IP: no available IPs",
        "  - BGP session node-a/peer-2 is Active: connect: connection refused",
        "  - team-a/second has an IP that no node reports announcing",
    ], "\n".join(lines)
    assert code == 1
    assert plugin_main(["status", "-o", "json", "--kubeconfig", str(cluster.kubeconfig)]) == 1
    view = json.loads(capsys.readouterr().out)
    assert view["services"] == {"loadBalancer": 7, "withIP": 3, "pending": 4}


def test_real_kubectl_runs_the_plugin(cluster: ApiServer) -> None:
    env = {**cluster.env(), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [KUBECTL, "plugin", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert str(BIN / "kubectl-metallb") in proc.stdout, proc.stdout + proc.stderr
    # KUBECONFIG from the environment, as kubectl itself uses it.
    proc = subprocess.run(
        [KUBECTL, "metallb", "explain", "svc", "web", "-n", "team-a"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "Service team-a/web: 192.0.2.10 from pool pool-a"
    proc = subprocess.run(
        [KUBECTL, "metallb", "status", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)["pools"][0]["pool"] == "pool-a"
    # metallb-py explain is the same command.
    proc = subprocess.run(
        [
            str(BIN / "metallb-py"),
            "explain",
            "svc",
            "web",
            "-n",
            "team-a",
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "Service team-a/web: 192.0.2.10 from pool pool-a"


def test_usage_errors_are_one_line(cluster: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    kc = ["--kubeconfig", str(cluster.kubeconfig)]
    assert plugin_main(["explain", "svc", "nope", *kc]) == 2
    assert capsys.readouterr().err == 'services "nope" not found in namespace default\n'
    assert plugin_main(["explain", "pod", "x", *kc]) == 2
    assert "unknown kind 'pod'" in capsys.readouterr().err
    assert plugin_main(["status", "--kubeconfig", "/nonexistent/kubeconfig"]) == 2
    assert capsys.readouterr().err == "kubeconfig /nonexistent/kubeconfig does not exist\n"
