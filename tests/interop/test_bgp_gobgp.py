"""`python -m bgp speak` against GoBGP: MP-BGP over IPv4, 4-byte ASN, iBGP, eBGP multihop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lab.bgp_speak import Speak
from tests.lab.daemons import GoBGP
from tests.lab.netns import Lab, wait_for
from tests.lab.topology import Lan, build_lan

ROUTER_AS = 64500


@pytest.fixture
def lan1(lab: Lab) -> Lan:
    return build_lan(lab, nodes=1)


def neighbor(address: str, peer_as: int, extra: str = "") -> str:
    return f"""
    [[neighbors]]
      [neighbors.config]
        neighbor-address = "{address}"
        peer-as = {peer_as}
      {extra}
      [[neighbors.afi-safis]]
        [neighbors.afi-safis.config]
          afi-safi-name = "ipv4-unicast"
      [[neighbors.afi-safis]]
        [neighbors.afi-safis.config]
          afi-safi-name = "ipv6-unicast"
    """


def attrs(g: GoBGP, family: str, prefix: str) -> dict[int, dict[str, Any]]:
    rib = g.rib(family)
    if prefix not in rib:
        return {}
    return {a["type"]: a for a in rib[prefix][0]["attrs"]}


def test_mp_bgp_over_ipv4_session_with_four_byte_asn_and_all_attributes(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    asn = 4200000001
    g = GoBGP(lan1.lab, "router", ROUTER_AS, rtr.ipv4, neighbors_toml=neighbor(node.ipv4, asn))
    g.start()
    sp = Speak(
        lan1.lab,
        "node1",
        [
            "--local-as",
            str(asn),
            "--peer",
            f"{ROUTER_AS}@{rtr.ipv4}",
            "--announce",
            "203.0.113.100",
            "2001:db8:200::100/128",
            "--community",
            "65000:100",
            "--large-community",
            "4200000001:2:3",
            "--med",
            "5",
        ],
        stdin=True,
    ).start()
    g.wait_established(node.ipv4)
    wait_for(lambda: attrs(g, "ipv6", "2001:db8:200::100/128"), 15, what="IPv6 route")
    wait_for(lambda: attrs(g, "ipv4", "203.0.113.100/32"), 15, what="IPv4 route")
    a4 = attrs(g, "ipv4", "203.0.113.100/32")
    assert a4[2]["as_paths"][0]["asns"] == [asn]
    assert a4[3]["nexthop"] == node.ipv4
    assert a4[4]["metric"] == 5
    assert a4[8]["communities"] == [(65000 << 16) | 100]
    assert a4[32]["value"] == [{"ASN": asn, "LocalData1": 2, "LocalData2": 3}]
    assert 5 not in a4, "no LOCAL_PREF on eBGP"
    a6 = attrs(g, "ipv6", "2001:db8:200::100/128")
    assert a6[14]["nexthop"] == node.ipv6  # the interface's global address
    assert a6[2]["as_paths"][0]["asns"] == [asn]

    sp.send("withdraw 2001:db8:200::100/128")
    sp.send("announce 2001:db8:200::101/128 community no-export")
    wait_for(lambda: not attrs(g, "ipv6", "2001:db8:200::100/128"), 10, what="v6 withdrawal")
    wait_for(lambda: attrs(g, "ipv6", "2001:db8:200::101/128"), 10, what="v6 announcement")
    # The command's community adds to those given on the command line.
    got = attrs(g, "ipv6", "2001:db8:200::101/128")[8]["communities"]
    assert sorted(got) == [(65000 << 16) | 100, 0xFFFFFF01]


def test_ibgp_local_pref(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    g = GoBGP(
        lan1.lab, "router", ROUTER_AS, rtr.ipv4, neighbors_toml=neighbor(node.ipv4, ROUTER_AS)
    )
    g.start()
    Speak(
        lan1.lab,
        "node1",
        [
            "--local-as",
            str(ROUTER_AS),
            "--peer",
            f"internal@{rtr.ipv4}",
            "--announce",
            "203.0.113.110",
            "2001:db8:200::110/128",
            "--local-pref",
            "321",
        ],
    ).start()
    g.wait_established(node.ipv4)
    wait_for(lambda: attrs(g, "ipv4", "203.0.113.110/32"), 15, what="iBGP route")
    wait_for(lambda: attrs(g, "ipv6", "2001:db8:200::110/128"), 15, what="iBGP v6 route")
    assert attrs(g, "ipv4", "203.0.113.110/32")[5]["value"] == 321
    assert attrs(g, "ipv6", "2001:db8:200::110/128")[5]["value"] == 321


def test_ebgp_multihop_crosses_a_router_single_hop_does_not(lan1: Lan) -> None:
    """GoBGP sits behind the router: TTL 1 (the eBGP default) dies there, multihop 2 works."""
    lab = lan1.lab
    node, rtr, far = lan1.nodes[0], lan1.router, "192.0.2.100"
    lab.exec("client", ["ip", "addr", "add", f"{far}/32", "dev", "lo"])
    lab.exec("router", ["ip", "route", "add", f"{far}/32", "via", lan1.client.ipv4])
    lab.exec("node1", ["ip", "route", "add", f"{far}/32", "via", rtr.ipv4])
    g = GoBGP(
        lab,
        "client",
        ROUTER_AS,
        far,
        neighbors_toml=neighbor(
            node.ipv4,
            64512,
            "[neighbors.ebgp-multihop.config]\n        enabled = true\n        multihop-ttl = 3\n"
            "      [neighbors.transport.config]\n        passive-mode = true\n"
            f'        local-address = "{far}"',
        ),
    ).start()
    base = ["--local-as", "64512", "--peer", f"{ROUTER_AS}@{far}", "--announce", "203.0.113.120"]
    single = Speak(lab, "node1", base).start()
    with pytest.raises(TimeoutError):
        g.wait_established(node.ipv4, timeout=4)
    assert not single.events("sessionEstablished")
    single.stop()
    Speak(lab, "node1", [*base, "--ebgp-multihop", "2"]).start()
    g.wait_established(node.ipv4)
    wait_for(lambda: attrs(g, "ipv4", "203.0.113.120/32"), 15, what="route over multihop session")
