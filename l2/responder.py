"""The ARP/NDP responder's decisions, sans I/O: frames and the time in, frames to send out.

The asyncio layer (announcer.py) feeds every frame its raw sockets receive into
`Responder.frame_received`, starts a takeover with `start_takeover(interface, ip, now)`, calls
`handle_timer(now)` at the deadline `get_timer()` gives, and sends what `datagrams_to_send()`
returns. Nothing here touches a socket or reads a clock, so every rule below, the takeover
schedule included, is unit-tested with plain bytes and a fake clock.

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
- Takeover: an (interface, address) pair that starts being announced gets `BurstConfig.count`
  rounds of gratuitous ARP (request and reply form) or unsolicited NA, the first at once, then one
  every `BurstConfig.interval` seconds after the previous round. A burst ends early when the pair is
  no longer announced or the interface is no longer served, and starts over when started again.
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
class BurstConfig:
    """Takeover burst: `count` rounds, `interval` seconds apart, the first one immediately."""

    count: int = 5
    interval: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 0 or self.interval < 0:
            raise ValueError("burst count and interval must not be negative")


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


@dataclass(frozen=True)
class TakeoverSent:
    """One round of a takeover burst went into `datagrams_to_send` (1-based `round`)."""

    ip: str
    interface: str
    round: int


Event = Conflict | TakeoverSent


@dataclass
class _Takeover:
    rounds_sent: int
    due: float


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

    def __init__(self, na_source: NaSource = "target", burst: BurstConfig | None = None) -> None:
        self.na_source = na_source
        self.burst = burst or BurstConfig()
        self.counters = Counters()
        self._interfaces: dict[str, InterfaceInfo] = {}
        self._announced: dict[str, frozenset[IPAddress]] = {}
        self._all_announced: frozenset[IPAddress] = frozenset()
        # ARP works on raw bytes (the hot path): packed IPv4 address -> its counter label.
        self._announced4: dict[str, dict[bytes, str]] = {}
        self._all4: dict[bytes, str] = {}
        self._events: collections.deque[Event] = collections.deque(maxlen=1024)
        self._out: list[tuple[str, bytes]] = []
        self._takeovers: dict[tuple[str, IPAddress], _Takeover] = {}

    # -- state ---------------------------------------------------------------------------------
    def set_interface(self, info: InterfaceInfo) -> None:
        self._interfaces[info.name] = info

    def remove_interface(self, name: str) -> None:
        self._interfaces.pop(name, None)
        self._prune_takeovers()

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
        self._prune_takeovers()

    def announced(self, interface: str) -> frozenset[IPAddress]:
        return self._announced.get(interface, frozenset())

    # -- outputs -------------------------------------------------------------------------------
    def datagrams_to_send(self) -> list[tuple[str, bytes]]:
        """(interface, Ethernet frame) pairs to send, oldest first; each call empties the queue."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """When `handle_timer` is due next (the next takeover round), or None."""
        return min((t.due for t in self._takeovers.values()), default=None)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- frames in -----------------------------------------------------------------------------
    def frame_received(self, interface: str, frame: bytes, pkttype: int = PACKET_HOST) -> None:
        """Every frame a socket delivers; any answer is queued for the same interface."""
        for reply in self._answer(interface, frame, pkttype):
            self._out.append((interface, reply))

    def _answer(self, interface: str, frame: bytes, pkttype: int) -> list[bytes]:
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
    def start_takeover(self, interface: str, ip: IPAddress, now: float) -> None:
        """Begin (or begin again) the takeover burst for `ip` on `interface`: round 1 now."""
        if self.burst.count == 0:
            return
        key = (interface, ip)
        self._takeovers[key] = _Takeover(0, now)
        self._takeover_round(key, self._takeovers[key], now)

    def handle_timer(self, now: float) -> None:
        """Send every takeover round that is due at `now`."""
        for key, takeover in list(self._takeovers.items()):
            if takeover.due <= now:
                self._takeover_round(key, takeover, now)

    def _takeover_round(self, key: tuple[str, IPAddress], takeover: _Takeover, now: float) -> None:
        interface, ip = key
        frames = self.gratuitous(interface, ip)
        if not frames:  # no longer served or announced there: the burst has nothing to claim
            del self._takeovers[key]
            return
        self._out.extend((interface, frame) for frame in frames)
        takeover.rounds_sent += 1
        self._events.append(TakeoverSent(str(ip), interface, takeover.rounds_sent))
        if takeover.rounds_sent >= self.burst.count:
            del self._takeovers[key]
        else:
            takeover.due = now + self.burst.interval

    def _prune_takeovers(self) -> None:
        for interface, ip in list(self._takeovers):
            if interface not in self._interfaces or ip not in self.announced(interface):
                del self._takeovers[(interface, ip)]

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
