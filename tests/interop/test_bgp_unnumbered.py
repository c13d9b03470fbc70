"""Unnumbered BGP (`--peer ASN@IFNAME`) and link-local BFD against FRR's `neighbor IF interface`.

Topology: our node has two point-to-point links, `eth0` to router r1 and `eth1` to router r2, with
no IP addresses at all (IPv6 link-local only; a global IPv6 address on `eth0` in one test). FRR
finds us by our Router Advertisements; we find it by its own.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.lab.bfd_lab import REPO, OurBfd, frr_bfd, frr_status
from tests.lab.bgp_speak import Speak
from tests.lab.daemons import Frr
from tests.lab.netns import Lab, wait_for

OUR_AS = 64512
R1_AS, R2_AS = 64500, 64501


def fabric(lab: Lab) -> None:
    """node:eth0 <-> r1:eth0, node:eth1 <-> r2:eth0; link-local addresses only."""
    for role in ("node", "r1", "r2"):
        lab.add_ns(role)
    lab.veth("node", "eth0", "r1", "eth0")
    lab.veth("node", "eth1", "r2", "eth0")
    for role in ("r1", "r2"):
        lab.exec(role, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        lab.exec(role, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])


def frr(lab: Lab, role: str, asn: int, router_id: str, *, bfd: bool = False) -> Frr:
    config = f"""
    frr defaults datacenter
    !
    router bgp {asn}
     bgp router-id {router_id}
     no bgp ebgp-requires-policy
     neighbor eth0 interface remote-as external
     {"neighbor eth0 bfd" if bfd else ""}
     address-family ipv6 unicast
      neighbor eth0 activate
     exit-address-family
    """
    daemons = ("zebra", "bgpd", "bfdd") if bfd else ("zebra", "bgpd")
    return Frr(lab, role, config, daemons=daemons).start()


def neighbor(f: Frr) -> dict[str, Any]:
    return dict(f.json("show bgp neighbors eth0").get("eth0", {}))


def established(f: Frr) -> bool:
    return neighbor(f).get("bgpState") == "Established"


def paths(f: Frr, afi: str, prefix: str) -> list[dict[str, Any]]:
    return list(f.json(f"show bgp {afi} unicast {prefix}").get("paths", []))


def installed(f: Frr, afi: str, prefix: str) -> bool:
    cmd = "show ip route" if afi == "ipv4" else "show ipv6 route"
    routes = f.json(f"{cmd} {prefix}").get(prefix, [])
    return any(r.get("installed") for r in routes)


def kernel_route(lab: Lab, role: str, prefix: str) -> str:
    family = "-6" if ":" in prefix else "-4"
    return lab.exec(role, ["ip", family, "route", "show", prefix]).strip()


def link_local(lab: Lab, role: str, iface: str) -> str:
    out = json.loads(lab.exec(role, ["ip", "-j", "-6", "addr", "show", "dev", iface]))
    for link in out:
        for a in link.get("addr_info", []):
            if a.get("scope") == "link":
                return str(a["local"])
    raise AssertionError(f"no link-local address on {role}:{iface}")


def speak(lab: Lab, *peers: str, extra: tuple[str, ...] = ()) -> Speak:
    args = ["--local-as", str(OUR_AS), "--hold-time", "9"]
    for p in peers:
        args += ["--peer", p]
    args += ["--announce", "203.0.113.40/32", "2001:db8:200::40/128", *extra]
    return Speak(lab, "node", args).start()


def check_routes(f: Frr, ours: str) -> None:
    """Both service routes at `f`, with our link-local next hop, installed by zebra."""
    wait_for(lambda: paths(f, "ipv4", "203.0.113.40/32"), 20, what="IPv4 route at FRR")
    wait_for(lambda: paths(f, "ipv6", "2001:db8:200::40/128"), 20, what="IPv6 route at FRR")
    (p4,) = paths(f, "ipv4", "203.0.113.40/32")
    assert {h.get("ip") for h in p4["nexthops"]} == {ours}, p4["nexthops"]
    assert all(h.get("afi") == "ipv6" for h in p4["nexthops"]), p4["nexthops"]
    (p6,) = paths(f, "ipv6", "2001:db8:200::40/128")
    assert ours in {h.get("ip") for h in p6["nexthops"]}, p6["nexthops"]
    wait_for(lambda: installed(f, "ipv4", "203.0.113.40/32"), 15, what="zebra installs IPv4")
    wait_for(lambda: installed(f, "ipv6", "2001:db8:200::40/128"), 15, what="zebra installs IPv6")


def test_unnumbered_routes_with_link_local_next_hop_installed_and_second_router(lab: Lab) -> None:
    fabric(lab)
    r1 = frr(lab, "r1", R1_AS, "192.0.2.1")
    r2 = frr(lab, "r2", R2_AS, "192.0.2.2")
    sp = speak(lab, "external@eth0", f"{R2_AS}@eth1")
    ours0, ours1 = link_local(lab, "node", "eth0"), link_local(lab, "node", "eth1")

    wait_for(lambda: established(r1), 30, what="r1 Established with our speaker")
    wait_for(lambda: established(r2), 30, what="r2 Established with our speaker")
    est = sp.wait_event("sessionEstablished", peer="eth0:179")
    assert est["interface"] == "eth0"
    assert est["peerAddress"] == f"{link_local(lab, 'r1', 'eth0')}%eth0"
    assert est["peerASN"] == R1_AS
    # RFC 8950 negotiated both ways for IPv4 unicast over IPv6.
    caps = neighbor(r1)["neighborCapabilities"]
    assert "extendedNexthop" in caps, caps

    for f, ours in ((r1, ours0), (r2, ours1)):
        check_routes(f, ours)
    assert "eth0" in kernel_route(lab, "r1", "203.0.113.40/32")
    assert ours0 in kernel_route(lab, "r1", "2001:db8:200::40/128")
    assert ours1 in kernel_route(lab, "r2", "2001:db8:200::40/128")


def test_global_address_goes_first_in_the_next_hop(lab: Lab) -> None:
    fabric(lab)
    lab.addr("node", "eth0", "2001:db8:100::b/64")
    r1 = frr(lab, "r1", R1_AS, "192.0.2.1")
    speak(lab, "external@eth0")
    wait_for(lambda: paths(r1, "ipv6", "2001:db8:200::40/128"), 30, what="IPv6 route at FRR")
    (p6,) = paths(r1, "ipv6", "2001:db8:200::40/128")
    hops = {h.get("scope"): h.get("ip") for h in p6["nexthops"]}
    assert hops.get("global") == "2001:db8:100::b", p6["nexthops"]
    assert hops.get("link-local") == link_local(lab, "node", "eth0"), p6["nexthops"]


def test_link_cut_and_restore_reestablishes_and_follows_a_new_router_address(lab: Lab) -> None:
    fabric(lab)
    r1 = frr(lab, "r1", R1_AS, "192.0.2.1")
    sp = speak(lab, "external@eth0")
    wait_for(lambda: established(r1), 30, what="r1 Established")
    first = sp.wait_event("sessionEstablished", peer="eth0:179")

    # The router's side goes down and comes back with another MAC: a new link-local address.
    lab.link_set("r1", "eth0", False)
    sp.wait_event("sessionDown", peer="eth0:179")
    lab.exec("r1", ["ip", "link", "set", "eth0", "address", "02:00:5e:00:53:01"])
    lab.link_set("r1", "eth0", True)
    new_ll = wait_for(
        lambda: (a := link_local(lab, "r1", "eth0")).startswith("fe80::") and a,
        10,
        what="r1's new link-local address",
    )
    assert f"{new_ll}%eth0" != first["peerAddress"]
    again = sp.wait_event("sessionEstablished", peer="eth0:179", count=2, timeout=40)
    assert again["peerAddress"] == f"{new_ll}%eth0"
    wait_for(lambda: established(r1), 30, what="r1 Established again")
    wait_for(lambda: paths(r1, "ipv4", "203.0.113.40/32"), 20, what="route back at FRR")


def test_bfd_down_tears_the_unnumbered_session_and_bgp_comes_back(lab: Lab) -> None:
    """The speaker's BFD glue (BFDProfile of the peer) over link-local addresses, FRR `bfd`."""
    fabric(lab)
    r1 = frr(lab, "r1", R1_AS, "192.0.2.1", bfd=True)
    ours = lab.spawn(
        "node",
        [
            sys.executable,
            "-m",
            "tests.lab.bfd_bgp_runner",
            "--local-as=64512",
            "--router-id=192.0.2.10",
            "--peer-as=external",
            "--interface=eth0",
            "--connect-retry=2",
        ],
        name="bfd-bgp",
        env={"PYTHONPATH": REPO},
    )
    node_ll, r1_ll = link_local(lab, "node", "eth0"), link_local(lab, "r1", "eth0")
    wait_for(lambda: established(r1), 30, what="r1 Established")
    wait_for(lambda: frr_status(r1, node_ll) == "up", 20, what="BFD up at FRR")
    up = wait_for(
        lambda: [
            ln
            for ln in _lines(ours.output())
            if ln.get("event") == "bfdStateChange" and ln.get("state") == "up"
        ],
        10,
        what="our BFD up",
    )
    assert up[0]["peer"] == f"{r1_ll}%eth0" and up[0]["local"] == f"{node_ll}%eth0"  # type: ignore[index]

    lab.nft(
        "node",
        "table inet bfd_ll_test {\n"
        " chain in { type filter hook input priority 0; udp dport 3784 drop; }\n"
        " chain out { type filter hook output priority 0; udp dport 3784 drop; }\n"
        "}\n",
    )
    wait_for(lambda: not established(r1), 10, what="BGP torn down by BFD")
    logs = _lines(ours.output())
    torn = [ln for ln in logs if ln.get("event") == "bgpSessionTornDownByBfd"]
    assert torn and torn[0]["peer"] == "eth0:179", torn
    # Our BFD is still blocked; BGP does not wait for it and comes back after ConnectRetry
    # (FRR keeps its own side down while its BFD session is down, so we look at ours).
    lab.exec("node", ["nft", "delete", "table", "inet", "bfd_ll_test"])
    wait_for(lambda: established(r1), 40, what="r1 Established again")
    wait_for(lambda: frr_status(r1, node_ll) == "up", 20, what="BFD up again at FRR")


def test_bfd_cli_interface_finds_the_router_without_router_advertisements(lab: Lab) -> None:
    """`python -m bfd session --interface eth0`; FRR runs bfdd only (no RAs): the neighbour
    table, filled by our echo to all-routers, gives the router's address."""
    fabric(lab)
    node_ll, r1_ll = link_local(lab, "node", "eth0"), link_local(lab, "r1", "eth0")
    r1 = frr_bfd(lab, "r1", f" peer {node_ll} interface eth0\n  receive-interval 300\n !\n")
    ours = OurBfd.start(lab, "node", ["--interface", "eth0"])
    ours.wait_state(f"{r1_ll}%eth0", "up", timeout=20)
    wait_for(lambda: frr_status(r1, node_ll) == "up", 20, what="BFD up at FRR")
    # The link goes down and comes back: the session follows.
    lab.link_set("r1", "eth0", False)
    wait_for(lambda: frr_status(r1, node_ll) != "up", 10, what="FRR sees the link down")
    lab.link_set("r1", "eth0", True)
    wait_for(lambda: frr_status(r1, node_ll) == "up", 30, what="BFD up again after the flap")


def _lines(text: str) -> list[dict[str, Any]]:
    out = []
    for raw in text.splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out
