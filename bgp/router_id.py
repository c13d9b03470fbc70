"""Choosing a BGP router ID (a nonzero 32-bit number written as an IPv4 address).

Order, as MetalLB's native speaker does it: the configured ID; else the session's IPv4 source
address; else an IPv4 address of the node; else, for IPv6-only nodes, a stable hash of the node
name (CRC-32 of the name, little-endian, as MetalLB computes it), so every restart of the same node
picks the same ID.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
import zlib
from collections.abc import Iterable

SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 40  # struct ifreq on 64-bit Linux


class RouterIdError(ValueError):
    """A configured router ID is not a valid nonzero dotted-quad."""


def parse_router_id(text: str) -> ipaddress.IPv4Address:
    try:
        rid = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise RouterIdError(f"router ID {text!r} is not an IPv4 address") from exc
    if int(rid) == 0:
        raise RouterIdError("router ID 0.0.0.0 is not allowed (RFC 6286)")
    return rid


def node_ipv4_addresses() -> list[ipaddress.IPv4Address]:
    """IPv4 addresses configured on this network namespace's interfaces (loopback last)."""
    size = 64 * _IFREQ_SIZE
    buf = array.array("B", b"\0" * size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        addr, _ = buf.buffer_info()
        ifconf = struct.pack("iL", size, addr)
        used = struct.unpack("iL", fcntl.ioctl(s.fileno(), SIOCGIFCONF, ifconf))[0]
    raw = buf.tobytes()[:used]
    out: list[ipaddress.IPv4Address] = []
    for off in range(0, used, _IFREQ_SIZE):
        # ifr_name[16], then struct sockaddr_in: family(2) port(2) addr(4)
        ip = ipaddress.IPv4Address(raw[off + 20 : off + 24])
        if int(ip):
            out.append(ip)
    out.sort(key=lambda a: (a.is_loopback, int(a)))
    return out


def hash_router_id(node_name: str) -> ipaddress.IPv4Address:
    """A stable ID for a node with no IPv4 address: CRC-32 (IEEE) of the name, little-endian."""
    rid = ipaddress.IPv4Address(zlib.crc32(node_name.encode()).to_bytes(4, "little"))
    return rid if int(rid) else ipaddress.IPv4Address(1)


def choose_router_id(
    configured: str | None = None,
    session_source: str | None = None,
    node_addresses: Iterable[ipaddress.IPv4Address] | None = None,
    node_name: str = "",
) -> ipaddress.IPv4Address:
    """The router ID by the rules in the module docstring.

    `node_addresses` defaults to `node_ipv4_addresses()`; loopback addresses count only when nothing
    else exists, and `node_name` (default: the host name) is the last resort.
    """
    if configured:
        return parse_router_id(configured)
    if session_source:
        src = ipaddress.ip_address(session_source.split("%", 1)[0])
        if isinstance(src, ipaddress.IPv4Address) and int(src):
            return src
        if isinstance(src, ipaddress.IPv6Address) and src.ipv4_mapped is not None:
            return src.ipv4_mapped
    addrs = list(node_ipv4_addresses() if node_addresses is None else node_addresses)
    usable = [a for a in addrs if not a.is_loopback and int(a)]
    if usable:
        return usable[0]
    return hash_router_id(node_name or socket.gethostname())
