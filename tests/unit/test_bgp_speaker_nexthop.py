"""Next hops chosen from this host's real addresses (loopback), and the route-source reader."""

from __future__ import annotations

import ipaddress

from bgp.nexthop import choose, read_host_addresses, route_source


def test_ipv4_session_without_interface_ipv6_uses_the_mapped_address() -> None:
    hops = choose("127.0.0.1", "127.0.0.2", read_host_addresses())
    assert hops.v4 == ipaddress.IPv4Address("127.0.0.1").packed
    # lo's only IPv6 address is ::1 (loopback, not usable): fall back to ::ffff:127.0.0.1.
    assert hops.v6 == ipaddress.IPv6Address("::ffff:127.0.0.1").packed


def test_ipv6_session_takes_the_local_address_and_an_ipv4_of_the_same_interface() -> None:
    hops = choose("::1", "::1", read_host_addresses())
    assert hops.v6 == ipaddress.IPv6Address("::1").packed  # no link-local on lo: 16 octets
    assert hops.v4 == ipaddress.IPv4Address("127.0.0.1").packed


def test_route_source_asks_the_kernel_without_sending() -> None:
    assert route_source("127.0.0.1") == "127.0.0.1"
    assert route_source("::1") == "::1"
    assert route_source("not-an-address") is None
