"""Router ID selection: configured, session source, node address, hash of the node name."""

from __future__ import annotations

import ipaddress
import zlib

import pytest

from bgp.router_id import (
    RouterIdError,
    choose_router_id,
    hash_router_id,
    node_ipv4_addresses,
    parse_router_id,
)

A = ipaddress.IPv4Address


def test_configured_wins() -> None:
    assert choose_router_id("192.0.2.9", "198.51.100.11", [A("198.51.100.12")]) == A("192.0.2.9")


@pytest.mark.parametrize("bad", ["0.0.0.0", "2001:db8::1", "not-an-ip", "1.2.3"])
def test_configured_invalid(bad: str) -> None:
    with pytest.raises(RouterIdError):
        parse_router_id(bad)


def test_session_ipv4_source_next() -> None:
    assert choose_router_id(None, "198.51.100.11", [A("192.0.2.1")]) == A("198.51.100.11")
    assert choose_router_id(None, "::ffff:198.51.100.11", []) == A("198.51.100.11")


def test_ipv6_session_uses_node_ipv4_address() -> None:
    rid = choose_router_id(None, "2001:db8:100::11", [A("127.0.0.1"), A("192.0.2.4")])
    assert rid == A("192.0.2.4")


def test_ipv6_only_node_gets_stable_hash_of_name() -> None:
    rid = choose_router_id(None, "2001:db8:100::11", [A("127.0.0.1")], node_name="worker-7")
    assert rid == hash_router_id("worker-7") == choose_router_id(None, None, [], "worker-7")
    assert rid != hash_router_id("worker-8")
    # MetalLB's rule: the CRC-32 (IEEE) of the name, its bytes in little-endian order.
    assert rid.packed == zlib.crc32(b"worker-7").to_bytes(4, "little")


def test_node_addresses_are_read_from_the_kernel() -> None:
    addrs = node_ipv4_addresses()
    assert A("127.0.0.1") in addrs
    assert addrs[-1].is_loopback  # real addresses first
