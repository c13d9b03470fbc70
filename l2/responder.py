"""The ARP/NDP responder's decisions, sans I/O: a frame in, reply frames out, counters updated.

The asyncio layer (announcer.py) feeds every frame its raw sockets receive into
`Responder.handle_frame` and sends whatever comes back; `gratuitous` builds one takeover round.
Nothing here touches a socket or a clock, so every rule below is unit-tested with plain bytes.

Rules (MetalLB's, minus its known failures: MetalLB issues #2920, #2685 and #153):
- ARP: answer a request (broadcast, or unicast to our MAC) whose target is announced on the
  interface it arrived on, with that interface's MAC. Gratuitous requests (sender == target) are
  announcements, not questions, and are not answered.
- NDP: answer a Neighbor Solicitation for an announced target with or without a Source
  Link-Layer Address option (without it, to the frame's source MAC: MetalLB #2920), as a solicited
  NA with Override set. Source address: the target itself, as Linux does for its own addresses
  (and as `ndisc6` requires); it never depends on the interface's link-local address, so a
  tentative link-local cannot block us (MetalLB #2685). `na_source="link-local"` uses a usable
  link-local instead, falling back to the target while it is tentative. A DAD probe for our address
  gets an NA to all-nodes, as RFC 4861 §7.2.4 says, and is reported as a conflict.
- Another MAC claiming one of our addresses (ARP sender, NA target) is counted and reported.
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from l2 import packets as p

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NaSource = Literal["target", "link-local"]

_ETHERTYPE_ARP = b"\x08\x06"
_ARP_ETHER_IPV4 = b"\x00\x01\x08\x00\x06\x04"  # htype 1, ptype IPv4, hlen 6, plen 4
_OP_REQUEST, _OP_REPLY = b"\x00\x01", b"\x00\x02"
_ARP_REPLY_HEADER = _ARP_ETHER_IPV4 + _OP_REPLY
_ARP_END = p.ETH_HEADER_LEN + p.ARP_LEN
_ARP_PADDING = bytes(p.ETH_MIN_FRAME - _ARP_END)

PACKET_HOST = 0
PACKET_OTHERHOST = 3
PACKET_OUTGOING = 4


@dataclass(frozen=True)
class InterfaceInfo:
    """What the responder needs to know about one interface it serves."""

    name: str
    mac: bytes
    link_local: ipaddress.IPv6Address | None = None  # usable (not tentative), if any


@dataclass(frozen=True)
class Conflict:
    """Another station claims an address we announce."""

    ip: str
    interface: str
    mac: str
    how: str  # "arp-sender", "ndp-advertisement", "ndp-dad-probe"


@dataclass
class Counters:
    """Plain data; metallb_py maps these to metallb_layer2_* metrics (label `ip`)."""

    requests_received: collections.Counter[str] = field(default_factory=collections.Counter)
    responses_sent: collections.Counter[str] = field(default_factory=collections.Counter)
    gratuitous_sent: collections.Counter[str] = field(default_factory=collections.Counter)
    conflicts: collections.Counter[str] = field(default_factory=collections.Counter)
    malformed: collections.Counter[str] = field(default_factory=collections.Counter)  # by reason
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)  # by reason

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def diff_announcements(
    old: Mapping[str, frozenset[IPAddress]], new: Mapping[str, frozenset[IPAddress]]
) -> tuple[set[tuple[str, IPAddress]], set[tuple[str, IPAddress]]]:
    """(added, removed) (interface, ip) pairs: a takeover burst is due for `added` only."""
    old_pairs = {(i, ip) for i, ips in old.items() for ip in ips}
    new_pairs = {(i, ip) for i, ips in new.items() for ip in ips}
    return new_pairs - old_pairs, old_pairs - new_pairs


class Responder:
    """Which addresses to answer for on which interface, and how to answer."""

    def __init__(self, na_source: NaSource = "target") -> None:
        self.na_source = na_source
        self.counters = Counters()
        self._interfaces: dict[str, InterfaceInfo] = {}
        self._announced: dict[str, frozenset[IPAddress]] = {}
        self._all_announced: frozenset[IPAddress] = frozenset()
        # ARP works on raw bytes (the hot path): packed IPv4 address -> its counter label.
        self._announced4: dict[str, dict[bytes, str]] = {}
        self._all4: dict[bytes, str] = {}
        self._events: collections.deque[Conflict] = collections.deque(maxlen=1024)

    # -- state ---------------------------------------------------------------------------------
    def set_interface(self, info: InterfaceInfo) -> None:
        self._interfaces[info.name] = info

    def remove_interface(self, name: str) -> None:
        self._interfaces.pop(name, None)

    def interface(self, name: str) -> InterfaceInfo | None:
        return self._interfaces.get(name)

    def set_announced(self, per_interface: Mapping[str, Iterable[IPAddress]]) -> None:
        self._announced = {i: frozenset(ips) for i, ips in per_interface.items() if ips}
        self._all_announced = frozenset().union(*self._announced.values())
        self._announced4 = {
            name: {ip.packed: str(ip) for ip in ips if isinstance(ip, ipaddress.IPv4Address)}
            for name, ips in self._announced.items()
        }
        self._all4 = {k: v for table in self._announced4.values() for k, v in table.items()}

    def announced(self, interface: str) -> frozenset[IPAddress]:
        return self._announced.get(interface, frozenset())

    def next_event(self) -> Conflict | None:
        return self._events.popleft() if self._events else None

    # -- frames in -----------------------------------------------------------------------------
    def handle_frame(self, interface: str, frame: bytes, pkttype: int = PACKET_HOST) -> list[bytes]:
        """Every frame a socket delivers; returns the frames to send on the same interface."""
        if pkttype == PACKET_OUTGOING:
            self.counters.dropped["outgoing"] += 1
            return []
        info = self._interfaces.get(interface)
        if info is None:
            self.counters.dropped["interface-not-served"] += 1
            return []
        try:
            if frame[12:14] == _ETHERTYPE_ARP:
                return self._arp(info, frame)
            eth = p.parse_ethernet(frame)
            if eth.ethertype == p.ETH_P_IPV6:
                ip6 = p.parse_ipv6(eth.payload)
                if (
                    ip6.next_header != p.IPPROTO_ICMPV6
                    or len(ip6.payload) < 1
                    or ip6.payload[0] not in (p.ICMPV6_NS, p.ICMPV6_NA)
                ):
                    self.counters.dropped["not-ndp"] += 1
                    return []
                return self._ndp(info, eth, ip6, p.parse_ndp(ip6))
        except p.MalformedFrame as exc:
            self.counters.malformed[exc.reason] += 1
            return []
        self.counters.dropped["other-ethertype"] += 1
        return []

    def _conflict(self, ip: IPAddress, info: InterfaceInfo, mac: bytes, how: str) -> None:
        key = str(ip)
        self.counters.conflicts[key] += 1
        self._events.append(Conflict(key, info.name, p.mac_str(mac), how))

    def _arp(self, info: InterfaceInfo, frame: bytes) -> list[bytes]:
        """ARP straight from the frame's bytes: this runs once per request on a busy segment, so
        it builds no objects until it knows the request is ours. Same checks as parse_arp."""
        if len(frame) < _ARP_END:
            raise p.MalformedFrame("arp-truncated")
        if frame[14:20] != _ARP_ETHER_IPV4:
            raise p.MalformedFrame("arp-not-ethernet-ipv4")
        op = frame[20:22]
        if op != _OP_REQUEST and op != _OP_REPLY:
            raise p.MalformedFrame("arp-bad-op")
        sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
        if spa in self._all4 and sha != info.mac:
            self._conflict(ipaddress.IPv4Address(spa), info, sha, "arp-sender")
        if op != _OP_REQUEST:
            self.counters.dropped["arp-reply"] += 1
            return []
        dst = frame[0:6]
        if dst != p.BROADCAST_MAC and dst != info.mac:
            self.counters.dropped["not-for-us"] += 1
            return []
        key = self._announced4.get(info.name, {}).get(tpa)
        if key is None:
            self.counters.dropped["not-announced"] += 1
            return []
        self.counters.requests_received[key] += 1
        if spa == tpa:
            self.counters.dropped["gratuitous"] += 1
            return []
        self.counters.responses_sent[key] += 1
        return [
            sha
            + info.mac
            + _ETHERTYPE_ARP
            + _ARP_REPLY_HEADER
            + info.mac
            + tpa
            + sha
            + spa
            + _ARP_PADDING
        ]

    def _ndp(
        self, info: InterfaceInfo, eth: p.Ethernet, ip6: p.IPv6, msg: p.NdpMessage
    ) -> list[bytes]:
        target = msg.target
        if isinstance(msg, p.NeighborAdvertisement):
            lladdr = msg.target_lladdr or eth.src
            if target in self._all_announced and lladdr != info.mac:
                self._conflict(target, info, lladdr, "ndp-advertisement")
            self.counters.dropped["ndp-advertisement"] += 1
            return []
        if eth.dst != info.mac and not eth.dst[0] & 1:
            self.counters.dropped["not-for-us"] += 1
            return []
        if ip6.dst not in (target, p.solicited_node(target)):
            self.counters.malformed["ndp-bad-destination"] += 1
            return []
        if target not in self.announced(info.name):
            self.counters.dropped["not-announced"] += 1
            return []
        key = str(target)
        self.counters.requests_received[key] += 1
        source = self._na_source(info, target)
        lladdr_opt = (p.lladdr_option(p.NDP_OPT_TARGET_LLADDR, info.mac),)
        if ip6.src == p.UNSPECIFIED6:
            self._conflict(target, info, eth.src, "ndp-dad-probe")
            na = p.NeighborAdvertisement(target, override=True, options=lladdr_opt)
            dst_ip, dst_mac = p.ALL_NODES, p.multicast_mac(p.ALL_NODES)
        else:
            na = p.NeighborAdvertisement(target, solicited=True, override=True, options=lladdr_opt)
            dst_ip, dst_mac = ip6.src, msg.source_lladdr or eth.src
        self.counters.responses_sent[key] += 1
        return [p.ndp_frame(dst_mac, info.mac, source, dst_ip, na)]

    def _na_source(
        self, info: InterfaceInfo, target: ipaddress.IPv6Address
    ) -> ipaddress.IPv6Address:
        if self.na_source == "link-local" and info.link_local is not None:
            return info.link_local
        return target

    # -- takeover --------------------------------------------------------------------------------
    def gratuitous(self, interface: str, ip: IPAddress) -> list[bytes]:
        """One round of the takeover burst for `ip` on `interface` (empty if not served there)."""
        info = self._interfaces.get(interface)
        if info is None or ip not in self.announced(interface):
            return []
        if isinstance(ip, ipaddress.IPv4Address):
            # Request and reply form: some stacks only learn from one of them. The reply form
            # repeats our MAC as target so Linux treats it as gratuitous (arp_is_garp).
            frames = [
                p.arp_frame(
                    p.BROADCAST_MAC, info.mac, p.Arp(p.ARP_REQUEST, info.mac, ip, p.ZERO_MAC, ip)
                ),
                p.arp_frame(
                    p.BROADCAST_MAC, info.mac, p.Arp(p.ARP_REPLY, info.mac, ip, info.mac, ip)
                ),
            ]
        else:
            na = p.NeighborAdvertisement(
                ip,
                override=True,
                options=(p.lladdr_option(p.NDP_OPT_TARGET_LLADDR, info.mac),),
            )
            source = self._na_source(info, ip)
            frames = [p.ndp_frame(p.multicast_mac(p.ALL_NODES), info.mac, source, p.ALL_NODES, na)]
        self.counters.gratuitous_sent[str(ip)] += len(frames)
        return frames
