"""Next-hop choice as a pure function of the session's endpoints and the host's addresses: the
on-link, off-link, no-IPv4 and unnumbered (RFC 8950, link-local + global) branches."""

from __future__ import annotations

import ipaddress

from bgp.nexthop import HostAddresses, NextHops, choose, choose_unnumbered, for_session


def v4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def v6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def iface(name: str, text: str) -> tuple[str, ipaddress.IPv6Interface]:
    return name, ipaddress.IPv6Interface(text)


HOST = HostAddresses(
    (
        iface("eth0", "fe80::1/64"),
        iface("eth0", "2001:db8:1::10/64"),
        iface("eth1", "fe80::2/64"),  # eth1: IPv4 and a link-local IPv6 only
        iface("eth2", "2001:db8:2::10/64"),  # eth2: IPv6 only, no link-local
        iface("lo", "::1/128"),
    ),
    {
        "eth0": [ipaddress.IPv4Address("192.0.2.10"), ipaddress.IPv4Address("192.0.2.11")],
        "eth1": [ipaddress.IPv4Address("198.51.100.10")],
        "lo": [ipaddress.IPv4Address("127.0.0.1")],
    },
)


def test_ipv4_session_takes_the_interface_global_ipv6_for_ipv6_routes() -> None:
    assert choose("192.0.2.10", "192.0.2.1", HOST) == NextHops(
        v4("192.0.2.10"), v6("2001:db8:1::10")
    )


def test_ipv4_session_without_a_global_ipv6_falls_back_to_the_mapped_address() -> None:
    hops = choose("198.51.100.10", "198.51.100.1", HOST)  # eth1: link-local only
    assert hops == NextHops(v4("198.51.100.10"), v6("::ffff:198.51.100.10"))
    hops = choose("127.0.0.1", "127.0.0.2", HOST)  # lo: loopback is no next hop
    assert hops.v6 == v6("::ffff:127.0.0.1")
    hops = choose("203.0.113.5", "203.0.113.1", HOST)  # not an address of this host
    assert hops == NextHops(v4("203.0.113.5"), v6("::ffff:203.0.113.5"))


def test_ipv6_session_on_link_adds_the_link_local_and_takes_the_first_ipv4() -> None:
    hops = choose("2001:db8:1::10", "2001:db8:1::1", HOST)
    assert hops.v6 == v6("2001:db8:1::10") + v6("fe80::1")  # 32 octets
    assert hops.v4 == v4("192.0.2.10")


def test_ipv6_session_off_link_sends_the_global_address_alone() -> None:
    hops = choose("2001:db8:1::10", "2001:db8:ff::1", HOST)  # multihop: not in eth0's /64
    assert hops == NextHops(v4("192.0.2.10"), v6("2001:db8:1::10"))


def test_ipv6_session_from_a_link_local_address_is_not_doubled() -> None:
    hops = choose("fe80::1", "fe80::99", HOST)
    assert hops == NextHops(v4("192.0.2.10"), v6("fe80::1"))


def test_ipv6_session_without_ipv4_on_the_interface_has_no_ipv4_next_hop() -> None:
    hops = choose("2001:db8:2::10", "2001:db8:2::1", HOST)  # on-link but eth2 has no link-local
    assert hops == NextHops(None, v6("2001:db8:2::10"))
    hops = choose("2001:db8:9::10", "2001:db8:9::1", HOST)  # not an address of this host
    assert hops == NextHops(None, v6("2001:db8:9::10"))


def test_unnumbered_link_local_alone_global_first_and_nothing() -> None:
    assert choose_unnumbered("eth1", "fe80::2%eth1", HOST) == NextHops(
        v4("198.51.100.10"), v6("fe80::2")
    )
    both = choose_unnumbered("eth0", "fe80::1", HOST)
    assert both.v6 == v6("2001:db8:1::10") + v6("fe80::1")
    # No local address yet (or a global one): the interface's own link-local address.
    assert choose_unnumbered("eth0", None, HOST).v6 == both.v6
    assert choose_unnumbered("eth0", "2001:db8:1::10", HOST).v6 == both.v6
    # The session's link-local address wins over the interface's first one.
    assert choose_unnumbered("eth0", "fe80::77%eth0", HOST).v6 == v6("2001:db8:1::10") + v6(
        "fe80::77"
    )
    assert choose_unnumbered("eth9", None, HOST) == NextHops(None, None)


def test_for_session_unnumbered_with_rfc8950_sends_ipv4_over_the_ipv6_next_hop() -> None:
    hops, over = for_session("fe80::2%eth1", "", "eth1", True, HOST)
    assert hops == NextHops(None, v6("fe80::2")) and over
    hops, over = for_session("fe80::2%eth1", "", "eth1", False, HOST)
    assert hops == NextHops(v4("198.51.100.10"), v6("fe80::2")) and not over
    hops, over = for_session("fe80::1", "", "eth2", False, HOST)  # no IPv4, no RFC 8950
    assert hops.v4 is None and not over


def test_for_session_numbered_uses_rfc8950_only_without_an_ipv4_next_hop() -> None:
    hops, over = for_session("2001:db8:2::10", "2001:db8:2::1", None, True, HOST)
    assert hops.v4 is None and over
    hops, over = for_session("2001:db8:1::10", "2001:db8:1::1", None, True, HOST)
    assert hops.v4 == v4("192.0.2.10") and not over
    hops, over = for_session("", "192.0.2.1", None, False, HOST)  # no local address
    assert hops == NextHops(None, None) and not over


def test_host_addresses_default_is_empty() -> None:
    empty = HostAddresses()
    assert choose("192.0.2.10", "192.0.2.1", empty) == NextHops(
        v4("192.0.2.10"), v6("::ffff:192.0.2.10")
    )
    assert empty.v4_of("eth0") is None and empty.v4_of(None) is None
