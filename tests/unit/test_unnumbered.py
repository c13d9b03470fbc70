"""Unnumbered BGP pieces without a kernel: RS/RA codec and filter, the router tracker, next hops,
`ASN@IFNAME` parsing, scoped socket addresses and PeerConfig rules."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from bfd.engine import _peer_text, _sockaddr
from bgp.nexthop import HostAddresses, choose_unnumbered
from bgp.speak_cli import RouteSpecError, parse_peer
from bgp.speaker import PeerConfig
from bgp.transport import sockaddr
from l2 import bpf, packets
from l2.routers import (
    MIN_RA_GAP_S,
    NEIGHBOR_POLL_S,
    RA_INTERVAL_S,
    ROUTER_STALE_S,
    RS_COUNT,
    Action,
    RouterTracker,
    scoped,
)

R1 = ipaddress.IPv6Address("fe80::1")
R2 = ipaddress.IPv6Address("fe80::2")
US = ipaddress.IPv6Address("fe80::a")
MAC = bytes.fromhex("020000000001")


def _frame(
    msg: packets.RouterDiscoveryMessage, src: ipaddress.IPv6Address, hop: int = 255
) -> bytes:
    icmp = msg.build(src, packets.ALL_NODES)
    ip = packets.IPv6(src, packets.ALL_NODES, packets.IPPROTO_ICMPV6, hop, icmp).build()
    dst_mac = packets.multicast_mac(packets.ALL_NODES)
    return packets.Ethernet(dst_mac, MAC, packets.ETH_P_IPV6, ip).build()


def _parse(frame: bytes) -> packets.RouterDiscoveryMessage:
    eth = packets.parse_ethernet(frame)
    return packets.parse_router_discovery(packets.parse_ipv6(eth.payload))


def test_router_advertisement_round_trip_and_filter() -> None:
    opt = packets.lladdr_option(packets.NDP_OPT_SOURCE_LLADDR, MAC)
    ra = packets.RouterAdvertisement(64, router_lifetime=0, options=(opt,))
    frame = _frame(ra, R1)
    got = _parse(frame)
    assert isinstance(got, packets.RouterAdvertisement)
    assert (got.cur_hop_limit, got.router_lifetime, got.source_lladdr) == (64, 0, MAC)
    rs = _frame(packets.RouterSolicitation((opt,)), US)
    assert isinstance(_parse(rs), packets.RouterSolicitation)
    program = bpf.router_discovery_program()
    assert bpf.run(program, frame) and bpf.run(program, rs)
    assert not bpf.run(program, frame, pkttype=bpf.PACKET_OUTGOING)  # our own RAs
    ns = packets.ndp_frame(
        MAC, MAC, US, R1, packets.NeighborSolicitation(R1)
    )  # Neighbor Discovery proper is not ours to read
    assert not bpf.run(program, ns)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_frame(packets.RouterAdvertisement(), R1, hop=64), "ndp-hop-limit"),
        (
            _frame(packets.RouterAdvertisement(), ipaddress.IPv6Address("2001:db8::1")),
            "ra-source-not-link-local",
        ),
    ],
)
def test_router_advertisement_validation(frame: bytes, reason: str) -> None:
    with pytest.raises(packets.MalformedFrame) as info:
        _parse(frame)
    assert info.value.reason == reason


def test_bad_checksum_is_dropped() -> None:
    frame = bytearray(_frame(packets.RouterAdvertisement(), R1))
    frame[14 + 40 + 2] ^= 0xFF
    with pytest.raises(packets.MalformedFrame):
        _parse(bytes(frame))


def test_tracker_schedule_on_link_up() -> None:
    t = RouterTracker()
    assert t.deadline() is None
    t.set_usable(True, 100.0)
    assert set(t.due(100.0)) == {Action.SEND_RA, Action.SEND_RS}
    assert t.next_ra == 100.0 + RA_INTERVAL_S
    assert t.due(100.0 + NEIGHBOR_POLL_S) == [Action.POLL_NEIGHBORS]  # no RA heard yet
    for _ in range(1, RS_COUNT):  # RS_COUNT solicitations, then none
        assert Action.SEND_RS in t.due(t.next_rs or 0)
    assert t.next_rs is None


def test_tracker_learns_from_ra_and_stops_soliciting() -> None:
    t = RouterTracker()
    t.set_usable(True, 0.0)
    t.due(0.0)
    assert t.router_advertisement(R1, 1.0)
    assert t.current == R1 and t.next_rs is None
    # A router heard by RA: no neighbour-table polling.
    assert Action.POLL_NEIGHBORS not in t.due(NEIGHBOR_POLL_S)
    assert scoped(R1, "eth0") == "fe80::1%eth0"


def test_tracker_is_sticky_until_the_router_goes_silent() -> None:
    t = RouterTracker()
    t.set_usable(True, 0.0)
    t.router_advertisement(R1, 1.0)
    assert not t.router_advertisement(R2, 2.0)  # another router: R1 is still fresh
    assert t.current == R1
    t.router_advertisement(R2, ROUTER_STALE_S + 0.5)
    t.due(ROUTER_STALE_S + 1.5)  # R1 silent for the stale time: R2 takes over
    assert t.current == R2


def test_tracker_keeps_a_silent_router_when_nobody_else_is_heard() -> None:
    t = RouterTracker()
    t.set_usable(True, 0.0)
    t.router_advertisement(R1, 1.0)
    t.due(10 * ROUTER_STALE_S)
    assert t.current == R1


def test_tracker_forgets_on_link_down_and_answers_rs_rate_limited() -> None:
    t = RouterTracker()
    t.set_usable(True, 0.0)
    t.due(0.0)  # RA sent at 0
    t.router_solicitation(1.0)
    assert t.next_ra == MIN_RA_GAP_S  # not before the minimum gap
    t.router_advertisement(R1, 1.0)
    assert t.set_usable(False, 2.0)  # current changed (to None)
    assert t.current is None and t.deadline() is None
    assert not t.router_advertisement(R1, 3.0)  # ignored while down


def test_tracker_neighbour_fallback() -> None:
    t = RouterTracker()
    t.set_usable(True, 0.0)
    assert not t.neighbors([(R1, False), (R2, False)], 1.0)  # two hosts, neither a router
    assert t.neighbors([(R1, False), (R2, True)], 2.0) and t.current == R2
    t2 = RouterTracker()
    t2.set_usable(True, 0.0)
    assert t2.neighbors([(R1, False)], 1.0) and t2.current == R1  # the only one on the link
    assert t2.router_advertisement(R2, 2.0) is False  # R1 is fresh: sticky
    t2.due(ROUTER_STALE_S + 1.5)
    assert t2.current == R2  # RA sources win once the choice is open again


def test_interface_next_hops() -> None:
    v6 = (
        ("eth0", ipaddress.IPv6Interface("fe80::a/64")),
        ("eth1", ipaddress.IPv6Interface("fe80::b/64")),
        ("eth1", ipaddress.IPv6Interface("2001:db8:100::b/64")),
    )
    host = HostAddresses(v6, {"eth1": [ipaddress.IPv4Address("192.0.2.1")]})
    only_ll = choose_unnumbered("eth0", "fe80::a", host)
    assert only_ll.v6 == ipaddress.IPv6Address("fe80::a").packed and only_ll.v4 is None
    both = choose_unnumbered("eth1", "fe80::b%eth1", host)
    glob, ll = ipaddress.IPv6Address("2001:db8:100::b"), ipaddress.IPv6Address("fe80::b")
    assert both.v6 == glob.packed + ll.packed  # global first, then link-local (32 octets)
    assert both.v4 == ipaddress.IPv4Address("192.0.2.1").packed


def test_peer_config_interface_rules() -> None:
    cfg = PeerConfig("", "external", interface="eth0")
    assert cfg.key == "eth0:179"
    with pytest.raises(ValueError, match="exactly one"):
        PeerConfig("192.0.2.1", 64500, interface="eth0")
    with pytest.raises(ValueError, match="exactly one"):
        PeerConfig("", 64500)


def test_parse_peer_interface() -> None:
    spec = parse_peer("external@lo")
    assert (spec.address, spec.interface, spec.dynamic, spec.key) == (
        None,
        "lo",
        "external",
        "lo:179",
    )
    assert parse_peer("64500@lo:1179").port == 1179
    with pytest.raises(RouteSpecError, match="interface"):
        parse_peer("64500@nosuchif0")


def test_scoped_socket_addresses() -> None:
    lo = socket.if_nametoindex("lo")
    assert sockaddr("fe80::1%lo", 179) == ("fe80::1", 179, 0, lo)
    assert sockaddr("192.0.2.1", 179) == ("192.0.2.1", 179)
    assert _sockaddr("fe80::1%lo", 3784) == ("fe80::1", 3784, 0, lo)
    assert _sockaddr("2001:db8::1", 3784) == ("2001:db8::1", 3784, 0, 0)
    assert _peer_text(("fe80::1", 3784, 0, lo)) == "fe80::1%lo"
    assert _peer_text(("2001:db8::1", 3784, 0, 0)) == "2001:db8::1"
    assert _peer_text(("192.0.2.1", 3784)) == "192.0.2.1"
