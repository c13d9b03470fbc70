"""`python -m bgp speak` against FRR's bgpd: attributes, route refresh, graceful restart."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.lab.bgp_speak import Speak, peer_args
from tests.lab.daemons import Frr
from tests.lab.netns import Lab, wait_for
from tests.lab.topology import Lan, build_lan

ROUTER_AS = 64500


@pytest.fixture
def lan1(lab: Lab) -> Lan:
    return build_lan(lab, nodes=1)


def frr(lan: Lan, neighbors: str, extra: str = "") -> Frr:
    config = f"""
    frr defaults datacenter
    !
    router bgp {ROUTER_AS}
     bgp router-id {lan.router.ipv4}
     no bgp ebgp-requires-policy
     {extra}
    {neighbors}
    """
    return Frr(lan.lab, "router", config, daemons=("zebra", "bgpd")).start()


def paths(f: Frr, afi: str, prefix: str) -> list[dict[str, Any]]:
    return list(f.json(f"show bgp {afi} unicast {prefix}").get("paths", []))


def test_ipv6_session_link_local_next_hop_communities_and_route_refresh(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    f = frr(
        lan1,
        f""" neighbor {node.ipv6} remote-as 64512
     address-family ipv6 unicast
      neighbor {node.ipv6} activate
     exit-address-family
    """,
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args("64512", f"{ROUTER_AS}@[{rtr.ipv6}]:179"),
            "--announce",
            "2001:db8:200::80/128",
            "203.0.113.80/32",
            "--community",
            "65000:80",
            "--large-community",
            "64512:8:0",
        ],
    ).start()
    f.wait_established(node.ipv6, afi="ipv6Unicast")
    wait_for(lambda: paths(f, "ipv6", "2001:db8:200::80/128"), 15, what="IPv6 route at FRR")
    (p6,) = paths(f, "ipv6", "2001:db8:200::80/128")
    hops = {h.get("scope"): h.get("ip") for h in p6["nexthops"]}
    assert hops.get("global") == "2001:db8:100::b"
    assert str(hops.get("link-local", "")).startswith("fe80::"), p6["nexthops"]
    assert p6["community"]["list"] == ["65000:80"]
    assert p6["largeCommunity"]["list"] == ["64512:8:0"]
    assert p6["aspath"]["string"] == "64512"
    # IPv4 over the IPv6 session: carried with an IPv4 next hop of the same interface.
    wait_for(lambda: paths(f, "ipv4", "203.0.113.80/32"), 15, what="IPv4 route over IPv6 session")
    assert paths(f, "ipv4", "203.0.113.80/32")[0]["nexthops"][0]["ip"] == node.ipv4

    f.vtysh(f"clear bgp ipv6 unicast {node.ipv6} soft in")
    sp.wait_event("routeRefreshRequested", afi=2)
    f.wait_established(node.ipv6, afi="ipv6Unicast")
    assert paths(f, "ipv6", "2001:db8:200::80/128")


def test_graceful_restart_kill9_keeps_routes_stale_until_we_are_back(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    f = frr(lan1, f" neighbor {node.ipv4} remote-as 64512\n", extra="bgp graceful-restart")
    base = ["--local-as", "64512", "--peer", f"{ROUTER_AS}@{rtr.ipv4}", "--graceful-restart"]
    sp = Speak(lan1.lab, "node1", [*base, "--announce", "203.0.113.70", "203.0.113.71"]).start()
    f.wait_established(node.ipv4)
    wait_for(lambda: paths(f, "ipv4", "203.0.113.71/32"), 15, what="routes at FRR")

    sp.kill9()  # no NOTIFICATION, no FIN handshake of ours: a crash
    wait_for(
        lambda: all(p.get("stale") for p in paths(f, "ipv4", "203.0.113.70/32")),
        15,
        what="FRR keeps our route as stale",
    )
    assert paths(f, "ipv4", "203.0.113.71/32"), "routes are kept during the restart time"

    # Back, with one route fewer: the kept one is refreshed, the other goes after End-of-RIB.
    sp.args = [*base, "--announce", "203.0.113.70"]
    sp.start()
    f.wait_established(node.ipv4)
    wait_for(
        lambda: [p.get("stale") for p in paths(f, "ipv4", "203.0.113.70/32")] == [None],
        15,
        what="route refreshed (no longer stale)",
    )
    wait_for(lambda: not paths(f, "ipv4", "203.0.113.71/32"), 15, what="stale leftover removed")


def test_ibgp_local_pref_then_planned_restart_and_admin_shutdown(lan1: Lan) -> None:
    node, rtr = lan1.nodes[0], lan1.router
    f = frr(
        lan1,
        f" neighbor {node.ipv4} remote-as internal\n",
        extra="bgp graceful-restart",
    )
    base = [
        *peer_args(str(ROUTER_AS), f"{ROUTER_AS}@{rtr.ipv4}"),
        "--graceful-restart",
        "--announce",
        "203.0.113.90",
        "--local-pref",
        "250",
    ]
    sp = Speak(lan1.lab, "node1", base).start()
    f.wait_established(node.ipv4)
    wait_for(lambda: paths(f, "ipv4", "203.0.113.90/32"), 15, what="iBGP route")
    (p,) = paths(f, "ipv4", "203.0.113.90/32")
    assert p["locPrf"] == 250
    assert p["aspath"]["string"] in ("", "Local")

    # SIGTERM with --graceful-restart: a planned restart, FRR keeps the route (stale).
    assert sp.stop(signal.SIGTERM) == 0
    wait_for(
        lambda: all(p.get("stale") for p in paths(f, "ipv4", "203.0.113.90/32")),
        15,
        what="route kept stale after a planned restart",
    )
    sp.start()
    f.wait_established(node.ipv4)
    wait_for(
        lambda: [p.get("stale") for p in paths(f, "ipv4", "203.0.113.90/32")] == [None],
        15,
        what="route refreshed",
    )
    # SIGINT: administrative shutdown, FRR withdraws at once.
    assert sp.stop(signal.SIGINT) == 0
    wait_for(lambda: not paths(f, "ipv4", "203.0.113.90/32"), 10, what="route withdrawn")
    info = f.json(f"show bgp neighbors {node.ipv4}").get(node.ipv4, {})
    assert "Administrative Shutdown" in str(info.get("lastNotificationReason", "")) or (
        "Cease" in str(info.get("lastResetDueTo", ""))
    ), info.get("lastResetDueTo")


def test_ipv6_only_node_hash_router_id_and_ipv4_routes_over_ipv6_next_hop(lan1: Lan) -> None:
    """No IPv4 on the node: the router ID comes from the node name, and IPv4 routes travel
    with an IPv6 next hop (RFC 8950 extended next hop). FRR sends router advertisements for
    extended-nexthop peers, so the node also gets a SLAAC address: --local-address pins the
    source to the configured one."""
    node, rtr = lan1.nodes[0], lan1.router
    lan1.lab.exec("node1", ["ip", "addr", "del", f"{node.ipv4}/24", "dev", "eth0"])
    f = frr(
        lan1,
        f""" neighbor {node.ipv6} remote-as 64512
     neighbor {node.ipv6} capability extended-nexthop
     address-family ipv6 unicast
      neighbor {node.ipv6} activate
     exit-address-family
    """,
    )
    sp = Speak(
        lan1.lab,
        "node1",
        [
            *peer_args("64512", f"{ROUTER_AS}@{rtr.ipv6}"),
            "--announce",
            "203.0.113.85/32",
            "2001:db8:200::85/128",
            "--local-address",
            node.ipv6,
        ],
    ).start()
    f.wait_established(node.ipv6, afi="ipv6Unicast")
    started = sp.wait_event("speakerStarted")
    (rid,) = started["routerIDs"]
    assert not rid.startswith("198.51.100."), "no IPv4 address to take the ID from"
    wait_for(lambda: paths(f, "ipv4", "203.0.113.85/32"), 15, what="IPv4 route, IPv6 next hop")
    (p4,) = paths(f, "ipv4", "203.0.113.85/32")
    hop_ips = {h.get("ip") for h in p4["nexthops"]}
    assert node.ipv6 in hop_ips, p4["nexthops"]
    assert paths(f, "ipv6", "2001:db8:200::85/128")
    neighbor_info = f.json(f"show bgp neighbors {node.ipv6}").get(node.ipv6, {})
    assert neighbor_info.get("remoteRouterId") == rid
