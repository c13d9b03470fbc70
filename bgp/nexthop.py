"""Next hops for a session: a pure choice from the host's addresses, and the reader of them.

`choose` and `choose_unnumbered` decide from the session's endpoints and a `HostAddresses`
snapshot, so every branch is testable without a network namespace; `read_host_addresses` and
`route_source` are the only parts that ask the kernel.

Numbered IPv4 session: NEXT_HOP is the local address; IPv6 routes get the interface's global
IPv6 address, else the IPv4-mapped form of the local address. Numbered IPv6 session: the local
address, plus the interface's link-local one when the peer is on-link; IPv4 routes get an IPv4
address of the same interface (else none: only RFC 8950 can carry them). Unnumbered session: the
interface's global IPv6 address followed by our link-local one (32 octets), or the link-local
address alone; with RFC 8950 negotiated, IPv4 routes carry that IPv6 next hop too.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bgp.transport import BGP_PORT

V6Address = tuple[str, ipaddress.IPv6Interface]  # (interface name, address/prefix)


@dataclass(frozen=True)
class NextHops:
    v4: bytes | None
    v6: bytes | None  # 16 octets, or 32 with a link-local address


@dataclass(frozen=True)
class HostAddresses:
    """The addresses of this network namespace, per interface."""

    v6: Sequence[V6Address] = ()
    v4: Mapping[str, Sequence[ipaddress.IPv4Address]] = field(default_factory=dict)

    def v4_of(self, interface: str | None) -> bytes | None:
        """The interface's first IPv4 address, packed."""
        v4s = self.v4.get(interface, ()) if interface is not None else ()
        return v4s[0].packed if v4s else None


def choose(local: str, peer: str, host: HostAddresses) -> NextHops:
    """Next hops for a numbered session whose TCP endpoints are `local` and `peer`."""
    la = ipaddress.ip_address(local)
    pa = ipaddress.ip_address(peer)
    if isinstance(la, ipaddress.IPv4Address):
        ifname = next((n for n, addrs in host.v4.items() if la in addrs), None)
        glob = [
            i.ip
            for n, i in host.v6
            if n == ifname and not i.ip.is_link_local and not i.ip.is_loopback
        ]
        v6 = glob[0].packed if glob else ipaddress.IPv6Address(f"::ffff:{la}").packed
        return NextHops(la.packed, v6)
    mine = next(((n, i) for n, i in host.v6 if i.ip == la), None)
    if mine is None:
        return NextHops(None, la.packed)
    ifname, iface = mine
    v6 = la.packed
    if pa in iface.network and not la.is_link_local:
        ll = [i.ip for n, i in host.v6 if n == ifname and i.ip.is_link_local]
        if ll:
            v6 += ll[0].packed
    return NextHops(host.v4_of(ifname), v6)


def choose_unnumbered(interface: str, local: str | None, host: HostAddresses) -> NextHops:
    """Next hops for an unnumbered session on `interface` whose local address is `local`.

    `v6`: global then link-local, or link-local alone; `v4` is the interface's IPv4 address,
    for a router without RFC 8950.
    """
    mine = [i.ip for n, i in host.v6 if n == interface]
    ll: ipaddress.IPv6Address | None = None
    if local:
        la = ipaddress.ip_address(local.split("%", 1)[0])
        if isinstance(la, ipaddress.IPv6Address) and la.is_link_local:
            ll = la
    if ll is None:
        ll = next((a for a in mine if a.is_link_local), None)
    glob = next((a for a in mine if not a.is_link_local and not a.is_loopback), None)
    v6 = b"".join(a.packed for a in (glob, ll) if a is not None) or None
    return NextHops(host.v4_of(interface), v6)


def for_session(
    local: str, peer: str, interface: str | None, rfc8950: bool, host: HostAddresses
) -> tuple[NextHops, bool]:
    """(next hops, IPv4 routes over the IPv6 next hop) for an Established session.

    `rfc8950`: extended next hop for IPv4 unicast was negotiated. An unnumbered session then
    sends IPv4 routes with the IPv6 next hop, as unnumbered routers expect; a numbered one does
    only when it has no IPv4 next hop. Without a local address there is no next hop at all.
    """
    if interface:
        hops = choose_unnumbered(interface, local, host)
        if rfc8950:
            hops = NextHops(None, hops.v6)
    else:
        hops = choose(local, peer, host) if local else NextHops(None, None)
    return hops, hops.v4 is None and rfc8950


# -- readers ------------------------------------------------------------------------------------


def _ipv6_interfaces() -> list[V6Address]:
    """(interface name, address/prefix) of every IPv6 address in this network namespace."""
    out: list[V6Address] = []
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                addr = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
                out.append((parts[5], ipaddress.IPv6Interface(f"{addr}/{int(parts[2], 16)}")))
    except OSError:
        pass
    return out


def _ipv4_by_interface() -> dict[str, list[ipaddress.IPv4Address]]:
    size = 64 * 40
    buf = array.array("B", b"\0" * size)
    out: dict[str, list[ipaddress.IPv4Address]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ptr, _ = buf.buffer_info()
        used = struct.unpack("iL", fcntl.ioctl(s.fileno(), 0x8912, struct.pack("iL", size, ptr)))[0]
    raw = buf.tobytes()[:used]
    for off in range(0, used, 40):
        name = raw[off : off + 16].split(b"\0", 1)[0].decode()
        out.setdefault(name, []).append(ipaddress.IPv4Address(raw[off + 20 : off + 24]))
    return out


def read_host_addresses() -> HostAddresses:
    """This network namespace's IPv6 (/proc/net/if_inet6) and IPv4 (SIOCGIFCONF) addresses."""
    return HostAddresses(tuple(_ipv6_interfaces()), _ipv4_by_interface())


def route_source(peer: str, port: int = BGP_PORT) -> str | None:
    """The source address the kernel would use towards `peer` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in peer else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((peer, port))
            return str(s.getsockname()[0])
    except OSError:
        return None
