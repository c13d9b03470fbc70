"""`metallb-py speaker` with an unnumbered BGPPeer (`interface`), end to end through the API.

node1 sits on the LAN (it reaches the API server there) and has a second link, `eth1`, to a leaf
router running FRR with `neighbor eth0 interface remote-as external` and `bfd`; the link has
IPv6 link-local addresses only. A dual-stack Service's addresses reach FRR with our link-local
next hop and are withdrawn when the Service is deleted.
"""

from __future__ import annotations

import json
from typing import Any

from tests.lab.daemons import Frr
from tests.lab.netns import Lab, wait_for
from tests.lab.speaker_lab import SPEAKER_AS, cluster, endpoint_slice, metallb, service
from tests.lab.topology import Lan, build_lan

LEAF_AS = 64600


def leaf_frr(lan: Lan) -> Frr:
    lab = lan.lab
    lab.add_ns("leaf")
    lab.veth("node1", "eth1", "leaf", "eth0")
    lab.exec("leaf", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
    config = f"""
    frr defaults datacenter
    !
    router bgp {LEAF_AS}
     bgp router-id 192.0.2.250
     no bgp ebgp-requires-policy
     neighbor eth0 interface remote-as external
     neighbor eth0 bfd
     address-family ipv6 unicast
      neighbor eth0 activate
     exit-address-family
    """
    return Frr(lab, "leaf", config).start()


def paths(f: Frr, afi: str, prefix: str) -> list[dict[str, Any]]:
    return list(f.json(f"show bgp {afi} unicast {prefix}").get("paths", []))


def link_local(lan: Lan, role: str, iface: str) -> str:
    out = json.loads(lan.lab.exec(role, ["ip", "-j", "-6", "addr", "show", "dev", iface]))
    return next(
        str(a["local"]) for link in out for a in link["addr_info"] if a.get("scope") == "link"
    )


def test_unnumbered_peer_announces_and_withdraws_a_service(lab: Lab) -> None:
    if True:
        lan = build_lan(lab, nodes=1)
        frr = leaf_frr(lan)
        ours = link_local(lan, "node1", "eth1")
        dual = ["--service-cidr", "10.96.0.0/12", "--service-cidr", "2001:db8:96::/112"]
        with cluster(lan, apiserver_args=dual) as c:
            c.start_controller()
            c.apply(
                metallb(
                    "IPAddressPool", "dual", {"addresses": ["203.0.113.0/26", "2001:db8:200::/120"]}
                ),
                metallb("BFDProfile", "fast", {"receiveInterval": 300, "transmitInterval": 300}),
                metallb(
                    "BGPPeer",
                    "leaf",
                    {
                        "myASN": SPEAKER_AS,
                        "dynamicASN": "external",
                        "interface": "eth1",
                        "bfdProfile": "fast",
                        "holdTime": "9s",
                    },
                    "v1beta2",
                ),
                metallb("BGPAdvertisement", "all", {"ipAddressPools": ["dual"]}),
            )
            c.start_speaker("node1")
            c.wait_ready(timeout=60)
            wait_for(
                lambda: (
                    frr.json("show bgp neighbors eth0").get("eth0", {}).get("bgpState")
                    == "Established"
                ),
                40,
                what="FRR's unnumbered session Established",
            )

            c.apply(service("web", families=["IPv4", "IPv6"]), endpoint_slice("web", ["node1"]))
            ips = wait_for(lambda: len(c.service_ips("web")) == 2 and c.service_ips("web"), 30)
            assert isinstance(ips, list)
            v4 = next(ip for ip in ips if ":" not in ip)
            v6 = next(ip for ip in ips if ":" in ip)
            wait_for(lambda: paths(frr, "ipv4", f"{v4}/32"), 20, what="IPv4 route at FRR")
            wait_for(lambda: paths(frr, "ipv6", f"{v6}/128"), 20, what="IPv6 route at FRR")
            (p4,) = paths(frr, "ipv4", f"{v4}/32")
            assert {h["ip"] for h in p4["nexthops"]} == {ours}, p4["nexthops"]
            (p6,) = paths(frr, "ipv6", f"{v6}/128")
            assert ours in {h["ip"] for h in p6["nexthops"]}, p6["nexthops"]

            # BGPSessionState names the interface and the router's learned address; BFD is up.
            leaf_ll = link_local(lan, "leaf", "eth0")

            def session() -> dict[str, Any]:
                objs = c.items("bgpsessionstates")
                return next((o["status"] for o in objs if o["status"].get("peer") == "leaf"), {})

            wait_for(
                lambda: (
                    session().get("state") == "Established" and session().get("bfdState") == "Up"
                ),
                30,
                what="BGPSessionState Established with BFD Up",
            )
            st = session()
            assert (st["interface"], st["peerAddress"]) == ("eth1", leaf_ll), st
            assert not [ln for ln in c.speaker_log("node1") if ln.get("event") == "peerUnsupported"]

            c.delete("service", "web")
            wait_for(lambda: not paths(frr, "ipv4", f"{v4}/32"), 20, what="IPv4 route withdrawn")
            wait_for(lambda: not paths(frr, "ipv6", f"{v6}/128"), 20, what="IPv6 route withdrawn")
