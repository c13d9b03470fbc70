"""The Internet checksum (RFC 1071), shared by l2's ICMPv6 and bfd's IPv4/UDP echo packets."""

from __future__ import annotations

import struct


def ones_complement_sum(data: bytes) -> int:
    """16-bit one's complement sum of `data` (padded with a zero byte to an even length).

    A received packet whose checksum field is included sums to 0xFFFF when it is intact.
    """
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes) -> int:
    """The value for a checksum field, computed over `data` with that field set to zero."""
    return ~ones_complement_sum(data) & 0xFFFF
