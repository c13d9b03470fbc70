"""Ethernet, ARP, IPv6 and ICMPv6 Neighbor Discovery frames: parse and build, nothing else.

Every parser takes bytes from the wire and either returns a value or raises `MalformedFrame` with a
short reason, so the caller can drop and count a bad frame without ever crashing on one. MAC
addresses are 6-byte `bytes`; IP addresses are `ipaddress` objects.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from netkit.checksum import internet_checksum, ones_complement_sum

ETH_P_IPV4 = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_HEADER_LEN = 14
ETH_MIN_FRAME = 60  # without FCS; shorter frames are padded with zeros

ARP_HTYPE_ETHERNET = 1
ARP_REQUEST = 1
ARP_REPLY = 2
ARP_LEN = 28

IPV6_HEADER_LEN = 40
IPPROTO_ICMPV6 = 58
ICMPV6_ECHO_REQUEST = 128
ICMPV6_RS = 133
ICMPV6_RA = 134
ICMPV6_NS = 135
ICMPV6_NA = 136
NDP_HOP_LIMIT = 255
NDP_OPT_SOURCE_LLADDR = 1
NDP_OPT_TARGET_LLADDR = 2

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_ROUTERS = ipaddress.IPv6Address("ff02::2")
UNSPECIFIED6 = ipaddress.IPv6Address("::")


class MalformedFrame(ValueError):
    """A frame that cannot be what it claims to be; `reason` is a short, stable label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def solicited_node(addr: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """RFC 4291 §2.7.1: ff02::1:ffXX:XXXX from the low 24 bits of the address."""
    return ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + addr.packed[13:])


def multicast_mac(group: ipaddress.IPv6Address) -> bytes:
    """RFC 2464 §7: 33:33 followed by the low 32 bits of the group address."""
    return b"\x33\x33" + group.packed[12:]


# -- Ethernet ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ethernet:
    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes = b""

    def build(self) -> bytes:
        frame = self.dst + self.src + struct.pack("!H", self.ethertype) + self.payload
        if len(frame) < ETH_MIN_FRAME:
            frame += bytes(ETH_MIN_FRAME - len(frame))
        return frame


def parse_ethernet(frame: bytes) -> Ethernet:
    if len(frame) < ETH_HEADER_LEN:
        raise MalformedFrame("ethernet-truncated")
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    return Ethernet(frame[0:6], frame[6:12], ethertype, frame[ETH_HEADER_LEN:])


# -- ARP (RFC 826), Ethernet/IPv4 only --------------------------------------------------------


@dataclass(frozen=True)
class Arp:
    op: int
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_mac: bytes
    target_ip: ipaddress.IPv4Address

    def build(self) -> bytes:
        return (
            struct.pack("!HHBBH", ARP_HTYPE_ETHERNET, ETH_P_IPV4, 6, 4, self.op)
            + self.sender_mac
            + self.sender_ip.packed
            + self.target_mac
            + self.target_ip.packed
        )


def parse_arp(payload: bytes) -> Arp:
    # Ethernet pads short frames, so trailing bytes are expected and ignored.
    if len(payload) < ARP_LEN:
        raise MalformedFrame("arp-truncated")
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", payload)
    if htype != ARP_HTYPE_ETHERNET or ptype != ETH_P_IPV4 or hlen != 6 or plen != 4:
        raise MalformedFrame("arp-not-ethernet-ipv4")
    if op not in (ARP_REQUEST, ARP_REPLY):
        raise MalformedFrame("arp-bad-op")
    return Arp(
        op,
        payload[8:14],
        ipaddress.IPv4Address(payload[14:18]),
        payload[18:24],
        ipaddress.IPv4Address(payload[24:28]),
    )


def arp_frame(dst: bytes, src: bytes, arp: Arp) -> bytes:
    return Ethernet(dst, src, ETH_P_ARP, arp.build()).build()


# -- IPv6 (RFC 8200) --------------------------------------------------------------------------


@dataclass(frozen=True)
class IPv6:
    src: ipaddress.IPv6Address
    dst: ipaddress.IPv6Address
    next_header: int
    hop_limit: int
    payload: bytes = b""
    traffic_class: int = 0
    flow_label: int = 0

    def build(self) -> bytes:
        first = (6 << 28) | (self.traffic_class << 20) | self.flow_label
        return (
            struct.pack("!IHBB", first, len(self.payload), self.next_header, self.hop_limit)
            + self.src.packed
            + self.dst.packed
            + self.payload
        )


def parse_ipv6(data: bytes) -> IPv6:
    if len(data) < IPV6_HEADER_LEN:
        raise MalformedFrame("ipv6-truncated")
    first, length, next_header, hop_limit = struct.unpack_from("!IHBB", data)
    if first >> 28 != 6:
        raise MalformedFrame("ipv6-bad-version")
    if IPV6_HEADER_LEN + length > len(data):
        raise MalformedFrame("ipv6-truncated")
    return IPv6(
        ipaddress.IPv6Address(data[8:24]),
        ipaddress.IPv6Address(data[24:40]),
        next_header,
        hop_limit,
        data[IPV6_HEADER_LEN : IPV6_HEADER_LEN + length],
        (first >> 20) & 0xFF,
        first & 0xFFFFF,
    )


def icmpv6_checksum(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, icmp: bytes) -> int:
    """RFC 8200 §8.1 pseudo-header checksum over `icmp` (its checksum field must be zero)."""
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(icmp), IPPROTO_ICMPV6)
    return internet_checksum(pseudo + icmp)


def icmpv6_checksum_ok(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, icmp: bytes) -> bool:
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(icmp), IPPROTO_ICMPV6)
    return ones_complement_sum(pseudo + icmp) == 0xFFFF


# -- Neighbor Discovery (RFC 4861 §4.3, §4.4, §4.6.1) -----------------------------------------


@dataclass(frozen=True)
class NdpOption:
    kind: int
    data: bytes  # everything after the type and length bytes

    def build(self) -> bytes:
        total = 2 + len(self.data)
        padded = (total + 7) // 8 * 8
        return bytes([self.kind, padded // 8]) + self.data + bytes(padded - total)


def lladdr_option(kind: int, mac: bytes) -> NdpOption:
    return NdpOption(kind, mac)


def _parse_options(data: bytes) -> tuple[NdpOption, ...]:
    options = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            raise MalformedFrame("ndp-option-truncated")
        kind, units = data[offset], data[offset + 1]
        if units == 0:
            raise MalformedFrame("ndp-option-zero-length")  # RFC 4861 §4.6: must be discarded
        end = offset + units * 8
        if end > len(data):
            raise MalformedFrame("ndp-option-truncated")
        options.append(NdpOption(kind, data[offset + 2 : end]))
        offset = end
    return tuple(options)


def _find_lladdr(options: tuple[NdpOption, ...], kind: int) -> bytes | None:
    for opt in options:
        if opt.kind == kind and len(opt.data) >= 6:
            return opt.data[:6]
    return None


@dataclass(frozen=True)
class NeighborSolicitation:
    target: ipaddress.IPv6Address
    options: tuple[NdpOption, ...] = ()

    @property
    def source_lladdr(self) -> bytes | None:
        return _find_lladdr(self.options, NDP_OPT_SOURCE_LLADDR)

    def build(self, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address) -> bytes:
        body = bytes(4) + self.target.packed + b"".join(o.build() for o in self.options)
        return _icmp(ICMPV6_NS, body, src, dst)


@dataclass(frozen=True)
class NeighborAdvertisement:
    target: ipaddress.IPv6Address
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: tuple[NdpOption, ...] = field(default=())

    @property
    def target_lladdr(self) -> bytes | None:
        return _find_lladdr(self.options, NDP_OPT_TARGET_LLADDR)

    def build(self, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address) -> bytes:
        flags = (self.router << 31) | (self.solicited << 30) | (self.override << 29)
        body = (
            struct.pack("!I", flags)
            + self.target.packed
            + b"".join(o.build() for o in self.options)
        )
        return _icmp(ICMPV6_NA, body, src, dst)


def _icmp(kind: int, body: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address) -> bytes:
    unsummed = bytes([kind, 0, 0, 0]) + body
    checksum = icmpv6_checksum(src, dst, unsummed)
    return unsummed[:2] + struct.pack("!H", checksum) + unsummed[4:]


# -- Router Discovery (RFC 4861 §4.1, §4.2, §6.1) ----------------------------------------------


@dataclass(frozen=True)
class RouterSolicitation:
    options: tuple[NdpOption, ...] = ()

    @property
    def source_lladdr(self) -> bytes | None:
        return _find_lladdr(self.options, NDP_OPT_SOURCE_LLADDR)

    def build(self, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address) -> bytes:
        return _icmp(ICMPV6_RS, bytes(4) + b"".join(o.build() for o in self.options), src, dst)


@dataclass(frozen=True)
class RouterAdvertisement:
    """`router_lifetime` 0 says "not a default router": hosts learn nothing but our address."""

    cur_hop_limit: int = 0
    managed: bool = False
    other: bool = False
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    options: tuple[NdpOption, ...] = field(default=())

    @property
    def source_lladdr(self) -> bytes | None:
        return _find_lladdr(self.options, NDP_OPT_SOURCE_LLADDR)

    def build(self, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address) -> bytes:
        flags = (self.managed << 7) | (self.other << 6)
        body = struct.pack(
            "!BBHII",
            self.cur_hop_limit,
            flags,
            self.router_lifetime,
            self.reachable_time,
            self.retrans_timer,
        ) + b"".join(o.build() for o in self.options)
        return _icmp(ICMPV6_RA, body, src, dst)


@dataclass(frozen=True)
class EchoRequest:
    """ICMPv6 echo (RFC 4443 §4.1); sent to all-routers it makes every router resolve us."""

    ident: int
    seq: int
    data: bytes = b""

    def build(self, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address) -> bytes:
        body = struct.pack("!HH", self.ident, self.seq) + self.data
        return _icmp(ICMPV6_ECHO_REQUEST, body, src, dst)


def _nd_message(
    ip: IPv6, kinds: tuple[int, int], min_len: int, truncated: str, wrong_kind: str
) -> bytes:
    """The ICMPv6 message of a Neighbor Discovery packet, after the checks RFC 4861 §6.1 and §7.1
    share: ICMPv6 of one of `kinds`, at least `min_len` bytes, code 0, a good checksum, and hop
    limit 255 (a forwarded packet did not come from this link: off-link spoofing)."""
    if ip.next_header != IPPROTO_ICMPV6:
        raise MalformedFrame("ipv6-not-icmpv6")
    icmp = ip.payload
    if len(icmp) < min_len:
        raise MalformedFrame(truncated)
    kind, code = icmp[0], icmp[1]
    if kind not in kinds:
        raise MalformedFrame(wrong_kind)
    if ip.hop_limit != NDP_HOP_LIMIT:
        raise MalformedFrame("ndp-hop-limit")
    if code != 0:
        raise MalformedFrame("ndp-bad-code")
    if not icmpv6_checksum_ok(ip.src, ip.dst, icmp):
        raise MalformedFrame("icmpv6-bad-checksum")
    return icmp


RouterDiscoveryMessage = RouterSolicitation | RouterAdvertisement


def parse_router_discovery(ip: IPv6) -> RouterDiscoveryMessage:
    """Validate an RS or RA as RFC 4861 §6.1 requires and return it."""
    icmp = _nd_message(ip, (ICMPV6_RS, ICMPV6_RA), 8, "rd-truncated", "icmpv6-not-router-discovery")
    if icmp[0] == ICMPV6_RS:
        rs = RouterSolicitation(_parse_options(icmp[8:]))
        if ip.src == UNSPECIFIED6 and rs.source_lladdr is not None:
            raise MalformedFrame("rs-unspecified-with-lladdr")
        return rs
    if len(icmp) < 16:
        raise MalformedFrame("rd-truncated")
    if not ip.src.is_link_local:
        raise MalformedFrame("ra-source-not-link-local")  # §6.1.2
    hop, flags, lifetime, reachable, retrans = struct.unpack_from("!BBHII", icmp, 4)
    return RouterAdvertisement(
        hop,
        bool(flags & 0x80),
        bool(flags & 0x40),
        lifetime,
        reachable,
        retrans,
        _parse_options(icmp[16:]),
    )


NdpMessage = NeighborSolicitation | NeighborAdvertisement


def parse_ndp(ip: IPv6) -> NdpMessage:
    """Validate an NS or NA as RFC 4861 §7.1 requires and return it."""
    icmp = _nd_message(ip, (ICMPV6_NS, ICMPV6_NA), 24, "ndp-truncated", "icmpv6-not-ndp")
    target = ipaddress.IPv6Address(icmp[8:24])
    if target.is_multicast:
        raise MalformedFrame("ndp-multicast-target")
    options = _parse_options(icmp[24:])
    if icmp[0] == ICMPV6_NS:
        ns = NeighborSolicitation(target, options)
        # Duplicate Address Detection: must go to a solicited-node group, without SLLA.
        if ip.src == UNSPECIFIED6 and (not ip.dst.is_multicast or ns.source_lladdr is not None):
            raise MalformedFrame("ndp-bad-dad-probe")
        return ns
    (flags,) = struct.unpack_from("!I", icmp, 4)
    return NeighborAdvertisement(
        target,
        router=bool(flags >> 31 & 1),
        solicited=bool(flags >> 30 & 1),
        override=bool(flags >> 29 & 1),
        options=options,
    )


def ndp_frame(
    dst_mac: bytes,
    src_mac: bytes,
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    message: NdpMessage | RouterDiscoveryMessage | EchoRequest,
) -> bytes:
    icmp = message.build(src, dst)
    packet = IPv6(src, dst, IPPROTO_ICMPV6, NDP_HOP_LIMIT, icmp).build()
    return Ethernet(dst_mac, src_mac, ETH_P_IPV6, packet).build()
