"""`metallb-py speaker` over layer 2, end to end: the elected node answers `arping` and `ndisc6`
from the client, ETP Local and the exclude label move the address, interface selection holds, a
missing interface is reported, and the status objects, events and metrics say who announces."""

from __future__ import annotations

import signal
import time
from typing import Any

from l2 import election
from tests.lab.l2_tools import arping, ndisc6
from tests.lab.netns import wait_for
from tests.lab.speaker_lab import Cluster, cluster, endpoint_slice, metallb, node_object, service
from tests.lab.topology import L2_POOL4, L2_POOL6, Lan

EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


def l2_owner(c: Cluster, name: str) -> list[str]:
    objs = c.items("servicel2statuses", selector=f"metallb.io/service-name={name}")
    return sorted(o["status"]["node"] for o in objs)


def l2_status(c: Cluster, name: str) -> list[dict[str, Any]]:
    return [
        o["status"]
        for o in c.items("servicel2statuses", selector=f"metallb.io/service-name={name}")
    ]


def answered_by(lan: Lan, ip: str) -> set[str]:
    macs = {h.mac: h.role for h in lan.nodes}
    if ":" in ip:
        mac = ndisc6(lan.lab, "client", ip)
        return {macs.get(mac, mac)} if mac else set()
    return {macs.get(m, m) for m, _ in arping(lan.lab, "client", ip, count=2)}


def test_layer2_announcements_end_to_end(lan: Lan) -> None:
    nodes = [h.role for h in lan.nodes]
    with cluster(
        lan,
        apiserver_args=["--service-cidr", "10.96.0.0/12", "--service-cidr", "2001:db8:96::/112"],
    ) as c:
        c.start_controller()
        c.apply(
            metallb("IPAddressPool", "l2", {"addresses": [L2_POOL4, L2_POOL6]}),
            metallb(
                "IPAddressPool",
                "eth0-only",
                {"addresses": ["198.51.100.180/30"], "autoAssign": False},
            ),
            metallb(
                "IPAddressPool",
                "nowhere",
                {"addresses": ["198.51.100.190/31"], "autoAssign": False},
            ),
            metallb("L2Advertisement", "all", {"ipAddressPools": ["l2"]}),
            metallb(
                "L2Advertisement", "eth0", {"ipAddressPools": ["eth0-only"], "interfaces": ["eth0"]}
            ),
            metallb(
                "L2Advertisement",
                "missing",
                {"ipAddressPools": ["nowhere"], "interfaces": ["missing0"]},
            ),
        )
        # node1's speaker runs "in a Pod": its status objects are owned by the Pod; node2's by
        # its Node (a speaker run by systemd).
        c.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "speaker-node1", "namespace": "metallb-system"},
                "spec": {"containers": [{"name": "speaker", "image": "metallb-py"}]},
            }
        )
        c.start_speaker(nodes[0], "--pod-name", "speaker-node1")
        c.start_speaker(nodes[1])
        c.wait_ready(timeout=60)

        # -- IPv4: the hash winner answers, and only it ---------------------------------------
        c.apply(service("v4"), endpoint_slice("v4", nodes))
        (ip4,) = c.wait_ips("v4")
        owner = election.winner(nodes, ip4)
        assert owner is not None
        wait_for(lambda: l2_owner(c, "v4") == [owner], 15, what="ServiceL2Status of v4")
        assert l2_status(c, "v4")[0].get("interfaces") is None  # every interface
        wait_for(lambda: answered_by(lan, ip4) == {owner}, 15, what=f"{owner} answers ARP")
        assert f'metallb_layer2_requests_received{{ip="{ip4}"}}' in c.metrics(owner)
        # nodeAssigned once, not on every reconcile (an endpoint change reconciles again).
        c.apply(endpoint_slice("v4", list(reversed(nodes)), name="v4-eps-2"))
        wait_for(lambda: len(c.events("nodeAssigned")) >= 1, 15, what="nodeAssigned event")
        assigned = [e for e in c.events("nodeAssigned") if e["involvedObject"]["name"] == "v4"]
        assert len(assigned) == 1 and assigned[0].get("count", 1) == 1, assigned
        assert assigned[0]["message"] == f'announcing from node "{owner}" with protocol "layer2"'

        # -- the exclude label moves it to the other node -------------------------------------
        other = next(n for n in nodes if n != owner)
        c.apply(node_object(owner, {EXCLUDE: "true"}))
        wait_for(lambda: answered_by(lan, ip4) == {other}, 15, what=f"{other} takes over")
        assert l2_owner(c, "v4") == [other]
        c.apply(node_object(owner, {}))
        wait_for(lambda: answered_by(lan, ip4) == {owner}, 15, what=f"{owner} back")

        # -- IPv6 through NDP -------------------------------------------------------------------
        c.apply(service("v6", families=["IPv6"]), endpoint_slice("v6", nodes))
        (ip6,) = c.wait_ips("v6")
        owner6 = election.winner(nodes, ip6)
        wait_for(lambda: answered_by(lan, ip6) == {owner6}, 15, what=f"{owner6} answers NDP")

        # -- ETP Local: only a node with an endpoint ----------------------------------------
        c.apply(service("local", local=True), endpoint_slice("local", nodes[:1]))
        (ip_local,) = c.wait_ips("local")
        wait_for(lambda: l2_owner(c, "local") == [nodes[0]], 15, what="local status on node1")
        wait_for(lambda: answered_by(lan, ip_local) == {nodes[0]}, 15, what="local on node1")
        owners = [
            (o["status"]["node"], o["metadata"]["ownerReferences"][0]["kind"])
            for o in c.items("servicel2statuses", selector="metallb.io/service-name=local")
        ]
        assert owners == [(nodes[0], "Pod")], owners
        c.apply(endpoint_slice("local", nodes[1:]))
        wait_for(lambda: answered_by(lan, ip_local) == {nodes[1]}, 15, what="local on node2")
        wait_for(lambda: l2_owner(c, "local") == [nodes[1]], 15, what="local status on node2")
        kinds = [
            o["metadata"]["ownerReferences"][0]["kind"]
            for o in c.items("servicel2statuses", selector="metallb.io/service-name=local")
        ]
        assert kinds == ["Node"], kinds

        # -- interface selection --------------------------------------------------------------
        c.apply(
            service("sel", annotations={"metallb.io/address-pool": "eth0-only"}),
            endpoint_slice("sel", nodes),
            service("gone", annotations={"metallb.io/address-pool": "nowhere"}),
            endpoint_slice("gone", nodes),
        )
        (ip_sel,) = c.wait_ips("sel")
        wait_for(lambda: answered_by(lan, ip_sel), 15, what="eth0-only address answered")
        wait_for(
            lambda: [s.get("interfaces") for s in l2_status(c, "sel")] == [[{"name": "eth0"}]],
            15,
            what="ServiceL2Status lists the interface",
        )
        (ip_gone,) = c.wait_ips("gone")
        wait_for(
            lambda: any(
                e["involvedObject"]["name"] == "gone" and e["type"] == "Warning"
                for e in c.events("announceFailed")
            ),
            15,
            what="announceFailed warning",
        )
        assert not answered_by(lan, ip_gone)

        # -- withdraw on delete -------------------------------------------------------------
        c.delete("service", "v4")
        wait_for(lambda: not answered_by(lan, ip4), 15, what="v4 no longer answered")
        wait_for(lambda: not l2_owner(c, "v4"), 15, what="ServiceL2Status removed")

        # -- SIGTERM: stop answering at once and exit within 2 s ------------------------------
        assert answered_by(lan, ip_local) == {nodes[1]}
        proc = c.speakers[nodes[1]]
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - started < 2.5
        assert not answered_by(lan, ip_local)
