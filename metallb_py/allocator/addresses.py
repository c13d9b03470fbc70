"""Addresses as integers: the allocator's own form of pool blocks and service IPs.

Pool entries are parsed once, by the configuration parser; the controller hands the allocator
the parsed ranges as `Block`s, so no address text is formatted and parsed again.

Addresses are `(family, int)` pairs: integers make interval arithmetic and hashing
cheap, and the family keeps IPv4 `10.0.0.1` apart from IPv6 `::a00:1`.
"""

from __future__ import annotations

import ipaddress
import socket

IPv4 = 4
IPv6 = 6
# What MetalLB reports for an IPv6 pool with 62 or more host bits (Go's MaxInt64).
MAX_INT64 = 2**63 - 1

Address = tuple[int, int]  # (family, integer value)
Block = tuple[int, int, int]  # (family, first, last), inclusive: one pool entry


def parse_ip(text: str) -> Address:
    """`"10.0.0.1"` -> `(4, 167772161)`; ValueError with a readable message otherwise."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"invalid IP address {text!r}") from None
    return ip.version, int(ip)


def format_ip(addr: Address) -> str:
    family, value = addr
    if family == IPv4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return _format_v6(value)


def _format_v6(value: int) -> str:
    """RFC 5952 text, as ipaddress prints it, via the C inet_ntop (ipaddress is slow here)."""
    if value >> 48 == 0:
        return str(ipaddress.IPv6Address(value))  # ::/80 embeds IPv4 text in inet_ntop
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def is_buggy(family: int, value: int) -> bool:
    """IPv4 addresses ending in .0 or .255, which some old network stacks mishandle."""
    return family == IPv4 and (value & 0xFF) in (0, 255)


def count_buggy(first: int, last: int) -> int:
    """How many IPv4 addresses in `[first, last]` end in .0 or .255."""

    def upto(n: int) -> int:  # count in [0, n]
        if n < 0:
            return 0
        blocks, rest = divmod(n + 1, 256)
        return blocks * 2 + (1 if rest >= 1 else 0)  # rest < 256, so .255 is never partial

    return upto(last) - upto(first - 1)
