"""The BGP speaker: routes to originate, peers to send them to, and one session per peer.

Layers, bottom up:

- `Rib` — what we originate: per family, prefix -> `RouteAttrs`, for every peer or for named
  peers only (a targeted announcement overrides the general one for those peers).
- `RibOut` — one peer's Adj-RIB-Out: what the peer holds from us, the changes not sent yet,
  and the UPDATE stream that closes the gap (packed by `bgp.packing.Packer`), ending a full
  resync with End-of-RIB per family. Pure: no I/O, no clock.
- `Peer` — drives one `bgp.fsm.Session` over `bgp.transport` and feeds it UPDATEs from its
  `RibOut` as fast as TCP drains them; keeps MetalLB's per-peer counters.
- `Speaker` — the peer manager: add/update/remove peers at run time (an unchanged peer keeps
  its session), `announce(prefix, attrs, peers)` / `withdraw(prefix, peers)`, shutdown.

Unnumbered peers (`PeerConfig.interface`) have no configured address: `l2.routers` finds the
router's IPv6 link-local address on the interface (its Router Advertisements, else the neighbour
table) and advertises ours. The session starts when an address is known, is reset when it
changes, and is stopped (Cease) while the link is down. It offers extended next hop (RFC 8950):
IPv4 routes carry our link-local address (after the interface's global IPv6 address, when it has
one) as next hop, like IPv6 routes.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import fcntl
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bgp import router_id as rid
from bgp.context import AFI_IPV4, AFI_IPV6, IPV4_UNICAST, IPV6_UNICAST, SAFI_UNICAST
from bgp.errors import CEASE_ADMIN_SHUTDOWN, CEASE_OTHER_CONFIG_CHANGE, CEASE_PEER_DECONFIGURED
from bgp.events import (
    CloseConnection,
    ConnectRequested,
    EndOfRibReceived,
    Event,
    FamilyDisabled,
    Negotiated,
    RouteRefreshRequested,
    SessionDown,
    SessionEstablished,
)
from bgp.fsm import ACCEPT_OPEN_WAIT, Session, SessionConfig, SessionError, State
from bgp.packing import (
    DEFAULT_ATTRS,
    Packer,
    RouteAttrs,
    SessionEncoding,
    group_by_attrs,
    key_from_network,
    prefix_key,
)
from bgp.transport import (
    BGP_PORT,
    Listener,
    SocketOptions,
    Stream,
    StreamOwner,
    apply_options,
    dial,
)

if TYPE_CHECKING:
    from l2.routers import RouterFinder

log = logging.getLogger("bgp")
CLOSE_FLUSH_TIMEOUT = 5.0  # seconds a closing connection may take to send its last bytes

FAMILIES = (AFI_IPV4, AFI_IPV6)
RouteKey = tuple[int, bytes]  # (AFI, NLRI wire bytes)
Message = tuple[bytes, int, int]  # (UPDATE wire bytes, prefixes in it, End-of-RIB AFI or 0)


def _tagged(messages: Iterator[tuple[bytes, int]]) -> Iterator[Message]:
    for wire, count in messages:
        yield wire, count, 0


class Rib:
    """Routes we originate (see the module docstring)."""

    def __init__(self) -> None:
        self.common: dict[int, dict[bytes, RouteAttrs]] = {afi: {} for afi in FAMILIES}
        self.targeted: dict[str, dict[int, dict[bytes, RouteAttrs]]] = {}

    def __len__(self) -> int:
        return sum(len(t) for t in self.common.values())

    def adopt(self, afi: int, table: dict[bytes, RouteAttrs]) -> None:
        """Take `table` as the family's routes for every peer (bulk load, no copy)."""
        if self.common[afi]:
            self.common[afi].update(table)
        else:
            self.common[afi] = table

    def announce(
        self, afi: int, key: bytes, attrs: RouteAttrs, peers: Iterable[str] | None
    ) -> None:
        if peers is None:
            self.common[afi][key] = attrs
            return
        for p in peers:
            self.targeted.setdefault(p, {a: {} for a in FAMILIES})[afi][key] = attrs

    def withdraw(self, afi: int, key: bytes, peers: Iterable[str] | None) -> None:
        """Without `peers`: gone for everyone. With: the named peers' targeted entries only."""
        if peers is None:
            self.common[afi].pop(key, None)
            for t in self.targeted.values():
                t[afi].pop(key, None)
            return
        for p in peers:
            own = self.targeted.get(p)
            if own is not None:
                own[afi].pop(key, None)

    def lookup(self, peer: str, afi: int, key: bytes) -> RouteAttrs | None:
        t = self.targeted.get(peer)
        if t is not None:
            hit = t[afi].get(key)
            if hit is not None:
                return hit
        return self.common[afi].get(key)

    def desired(self, peer: str, afi: int) -> dict[bytes, RouteAttrs]:
        """Everything this peer should hold for the family."""
        t = self.targeted.get(peer)
        if t is None or not t[afi]:
            return self.common[afi]
        merged = dict(self.common[afi])
        merged.update(t[afi])
        return merged

    def forget_peer(self, peer: str) -> None:
        self.targeted.pop(peer, None)


@dataclass
class RibOut:
    """One peer's Adj-RIB-Out and the UPDATEs still to send (see the module docstring)."""

    sent: dict[int, dict[bytes, RouteAttrs]] = field(
        default_factory=lambda: {afi: {} for afi in FAMILIES}
    )
    pending: dict[int, dict[bytes, RouteAttrs | None]] = field(
        default_factory=lambda: {afi: {} for afi in FAMILIES}
    )
    eor_due: list[int] = field(default_factory=list)
    active: set[int] = field(default_factory=set)  # families the session carries
    _queue: list[Iterator[Message]] = field(default_factory=list)
    _resync: dict[int, dict[bytes, RouteAttrs]] = field(default_factory=dict)
    _shared: set[int] = field(default_factory=set)  # families whose `sent` IS the Rib's table
    _queued_prefixes: int = 0

    def start(self, families: Iterable[int], desired: dict[int, dict[bytes, RouteAttrs]]) -> None:
        """A new session: the peer holds nothing; send `desired`, then End-of-RIB per family."""
        self.active = set(families)
        self.sent = {afi: {} for afi in FAMILIES}
        self._shared.clear()
        self.pending = {afi: {} for afi in FAMILIES}
        self._queue.clear()
        self._queued_prefixes = 0
        self._resync = {afi: desired.get(afi, {}) for afi in sorted(self.active)}
        self.eor_due = sorted(self.active)

    def stop(self) -> None:
        """Session gone: nothing is sent until the next `start`."""
        self.active = set()
        self._queue.clear()
        self._resync.clear()
        self.eor_due = []
        self._queued_prefixes = 0
        for afi in FAMILIES:
            self.pending[afi].clear()

    def refresh(self, afi: int, desired: dict[bytes, RouteAttrs]) -> None:
        """Route refresh: send the family's whole table again (the peer asked for it)."""
        if afi not in self.active:
            return
        self.sent[afi] = {}
        self._shared.discard(afi)
        self.pending[afi].clear()
        self._resync[afi] = desired

    def unshare(self, afi: int) -> None:
        """The shared table is about to change: keep a private copy of what the peer holds."""
        if afi in self._shared:
            self._shared.discard(afi)
            self.sent[afi] = dict(self.sent[afi])

    def change(self, afi: int, key: bytes, attrs: RouteAttrs | None) -> None:
        """The route's desired state for this peer is now `attrs` (None: withdrawn)."""
        if afi in self.active:
            self.pending[afi][key] = attrs

    @property
    def idle(self) -> bool:
        return not (
            self._queue or self._resync or self.eor_due or any(self.pending[a] for a in FAMILIES)
        )

    @property
    def announced(self) -> int:
        return sum(len(s) for s in self.sent.values())

    @property
    def pending_count(self) -> int:
        return (
            sum(len(p) for p in self.pending.values())
            + sum(len(r) for r in self._resync.values())
            + self._queued_prefixes
        )

    def _plan(self, packer: Packer) -> None:
        """Turn the resync tables and pending changes into queued UPDATE generators."""
        for afi, table in list(self._resync.items()):
            del self._resync[afi]
            if not packer.can_send(afi):
                continue
            # What the peer holds is exactly the table: share it instead of copying (100 000
            # routes to N peers cost one table). `unshare` copies before the table changes.
            self.sent[afi] = table
            self._shared.add(afi)
            self._queued_prefixes += len(table)
            self._queue.append(_tagged(packer.announce(afi, group_by_attrs(table.items()))))
        if self.eor_due:  # End-of-RIB follows the initial table, before later changes
            self._queue.append(iter([(packer.end_of_rib(afi), 0, afi) for afi in self.eor_due]))
            self.eor_due = []
        for afi in FAMILIES:
            pend = self.pending[afi]
            if not pend:
                continue
            self.pending[afi] = {}
            if not packer.can_send(afi):
                continue
            sent = self.sent[afi]
            gone = [k for k, a in pend.items() if a is None and k in sent]
            for k in gone:
                del sent[k]
            changed: list[tuple[bytes, RouteAttrs]] = []
            for k, a in pend.items():
                if a is not None and sent.get(k) != a:
                    sent[k] = a
                    changed.append((k, a))
            if gone:
                self._queued_prefixes += len(gone)
                self._queue.append(_tagged(packer.withdraw(afi, gone)))
            if changed:
                self._queued_prefixes += len(changed)
                self._queue.append(_tagged(packer.announce(afi, group_by_attrs(changed))))

    def next_message(self, packer: Packer) -> Message | None:
        """The next UPDATE to send, or None when the peer is up to date."""
        while True:
            while self._queue:
                msg = next(self._queue[0], None)
                if msg is not None:
                    self._queued_prefixes -= msg[1]
                    return msg
                self._queue.pop(0)
            if self._resync or self.eor_due or any(self.pending[a] for a in FAMILIES):
                self._plan(packer)
                if self._queue:
                    continue
            return None


# -- addresses and next hops --------------------------------------------------------------------


def _ipv6_interfaces() -> list[tuple[str, ipaddress.IPv6Interface]]:
    """(interface name, address/prefix) of every IPv6 address in this network namespace."""
    out: list[tuple[str, ipaddress.IPv6Interface]] = []
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


def route_source(peer: str, port: int = BGP_PORT) -> str | None:
    """The source address the kernel would use towards `peer` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in peer else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((peer, port))
            return str(s.getsockname()[0])
    except OSError:
        return None


@dataclass(frozen=True)
class NextHops:
    v4: bytes | None
    v6: bytes | None  # 16 octets, or 32 with a link-local address


def next_hops(local: str, peer: str) -> NextHops:
    """Next hops for a session whose TCP endpoints are `local` and `peer`.

    IPv4 session: NEXT_HOP is the local address; IPv6 routes get the interface's global IPv6
    address, else the IPv4-mapped form of the local address. IPv6 session: the local address,
    plus the interface's link-local when the peer is on-link; IPv4 routes get an IPv4 address
    of the same interface (else none: only RFC 8950 can carry them).
    """
    la = ipaddress.ip_address(local)
    pa = ipaddress.ip_address(peer)
    v6s = _ipv6_interfaces()
    if isinstance(la, ipaddress.IPv4Address):
        ifname = next((n for n, addrs in _ipv4_by_interface().items() if la in addrs), None)
        glob = [
            i.ip for n, i in v6s if n == ifname and not i.ip.is_link_local and not i.ip.is_loopback
        ]
        v6 = glob[0].packed if glob else ipaddress.IPv6Address(f"::ffff:{la}").packed
        return NextHops(la.packed, v6)
    mine = next(((n, i) for n, i in v6s if i.ip == la), None)
    v6 = la.packed
    v4: bytes | None = None
    if mine is not None:
        ifname, iface = mine
        if pa in iface.network and not la.is_link_local:
            ll = [i.ip for n, i in v6s if n == ifname and i.ip.is_link_local]
            if ll:
                v6 += ll[0].packed
        v4s = _ipv4_by_interface().get(ifname, [])
        v4 = v4s[0].packed if v4s else None
    return NextHops(v4, v6)


def interface_next_hops(interface: str, local: str | None = None) -> NextHops:
    """Next hops for an unnumbered session on `interface` whose local address is `local`.

    IPv6 (and, with RFC 8950, IPv4) routes: the interface's global IPv6 address followed by our
    link-local one (32 octets), or the link-local address alone (16 octets) on a link without a
    global address. `v4` is the interface's IPv4 address, for a router without RFC 8950.
    """
    mine = [i.ip for n, i in _ipv6_interfaces() if n == interface]
    ll: ipaddress.IPv6Address | None = None
    if local:
        la = ipaddress.ip_address(local.split("%", 1)[0])
        if isinstance(la, ipaddress.IPv6Address) and la.is_link_local:
            ll = la
    if ll is None:
        ll = next((a for a in mine if a.is_link_local), None)
    glob = next((a for a in mine if not a.is_link_local and not a.is_loopback), None)
    v6 = b"".join(a.packed for a in (glob, ll) if a is not None) or None
    v4s = _ipv4_by_interface().get(interface, [])
    return NextHops(v4s[0].packed if v4s else None, v6)


# -- peers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerConfig:
    """One BGP neighbour. Changing anything but `name` resets its session.

    An unnumbered peer sets `interface` and leaves `address` empty (see the module docstring).
    """

    address: str
    peer_as: int | Literal["internal", "external"]
    port: int = BGP_PORT
    local_as: int | None = None  # None: the speaker's
    router_id: str | None = None  # None: see bgp.router_id
    local_address: str | None = None
    passive: bool = False
    hold_time: int = 90
    keepalive: float | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or repr
    ebgp_multihop: int | None = None  # TTL for eBGP; None: 1 (single hop)
    min_ttl: int | None = None  # GTSM (RFC 5082)
    vrf: str | None = None  # SO_BINDTODEVICE to the VRF device
    graceful_restart: bool = False
    restart_time: int = 120
    connect_retry: float = 1.0
    connect_retry_max: float = 30.0
    interface: str | None = None  # unnumbered: the router is found on this link
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if bool(self.interface) == bool(self.address):
            raise ValueError("a peer has exactly one of address and interface")

    @property
    def key(self) -> str:
        """`ADDR:PORT` (`[ADDR]:PORT` for IPv6), `IFNAME:PORT` for an unnumbered peer: MetalLB's
        `peer` metric label."""
        if self.interface:
            return f"{self.interface}:{self.port}"
        addr = ipaddress.ip_address(self.address)
        host = f"[{addr}]" if addr.version == 6 else str(addr)
        return f"{host}:{self.port}"


METRIC_NAMES = (
    "session_up",
    "updates_total",
    "updates_total_received",
    "announced_prefixes_total",
    "pending_prefixes_total",
    "opens_sent",
    "opens_received",
    "notifications_sent",
    "keepalives_sent",
    "keepalives_received",
    "route_refresh_sent",
    "total_sent",
    "total_received",
)


@dataclass(frozen=True)
class SpeakerEvent:
    """What happened to one peer, for the program embedding the speaker. Each kind is its own
    subclass with typed fields, so callers match on the type instead of on a name string."""

    peer: str  # the peer key


@dataclass(frozen=True)
class PeerEstablished(SpeakerEvent):
    """The session reached Established (logged as `sessionEstablished`)."""

    peer_as: int


@dataclass(frozen=True)
class PeerDown(SpeakerEvent):
    """An Established or notified session went down (logged as `sessionDown`)."""

    reason: str
    peer_keeps_routes: bool  # graceful restart: the peer keeps our routes as stale


@dataclass(frozen=True)
class TableSent(SpeakerEvent):
    """The whole table went out after Established, End-of-RIB included (`tableSent`)."""

    prefixes: int


@dataclass(frozen=True)
class PeerAddressChanged(SpeakerEvent):
    """An unnumbered peer's router moved to another address, or away (`None`: link down)."""

    address: str | None


EventCallback = Callable[[SpeakerEvent], None]


class _Conn(StreamOwner):
    def __init__(self, peer: Peer, conn_id: int, outgoing: bool) -> None:
        self.peer = peer
        self.conn_id = conn_id
        self.outgoing = outgoing
        self.stream: Stream = Stream(self)
        self.task: asyncio.Task[None] | None = None

    def on_data(self, data: bytes) -> None:
        self.peer._data(self.conn_id, data)

    def on_writable(self) -> None:
        self.peer._send_routes()

    def on_closed(self, exc: Exception | None) -> None:
        self.peer._lost(self.conn_id, exc)


class Peer:
    """One BGP session driven over asyncio (see the module docstring)."""

    def __init__(self, speaker: Speaker, config: PeerConfig) -> None:
        self.speaker = speaker
        self.config = config
        self.key = config.key
        self.loop = asyncio.get_running_loop()
        self.local_as = config.local_as or speaker.local_as
        self.router_id = self._choose_router_id()
        self.session = Session(self._session_config())
        self.ribout = RibOut()
        self.packer: Packer | None = None
        self.negotiated: Negotiated | None = None
        self.conns: dict[int, _Conn] = {}
        self.last_down_reason = ""
        self.prefixes_sent = 0
        self._timer: asyncio.TimerHandle | None = None
        self._table_pending = False
        self._sending = False
        self._closing: set[Stream] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.router: str | None = None  # unnumbered: the router's scoped link-local address
        self._wanted = False  # started and not stopped (an unnumbered one may wait for a router)
        self._watching = False

    @property
    def address(self) -> str:
        """Where the session goes: the configured address, or the router found on the link."""
        return self.config.address or self.router or ""

    @property
    def interface(self) -> str | None:
        return self.config.interface

    # -- setup -------------------------------------------------------------------------------
    def _choose_router_id(self) -> ipaddress.IPv4Address:
        cfg = self.config
        configured = cfg.router_id or self.speaker.router_id
        source = cfg.local_address or (route_source(cfg.address, cfg.port) if cfg.address else None)
        return rid.choose_router_id(configured, source, node_name=self.speaker.node_name)

    def _session_config(self) -> SessionConfig:
        cfg = self.config
        v6_session = ":" in cfg.address or bool(cfg.interface)
        return SessionConfig(
            local_as=self.local_as,
            router_id=self.router_id,
            peer_as=cfg.peer_as,
            hold_time=cfg.hold_time,
            keepalive_time=cfg.keepalive,
            passive=cfg.passive,
            families=(IPV4_UNICAST, IPV6_UNICAST),
            extended_next_hop=((AFI_IPV4, SAFI_UNICAST, AFI_IPV6),) if v6_session else (),
            graceful_restart=cfg.graceful_restart,
            # R bit (RFC 4724): until this session is first up again in this process, and
            # at most the restart time after the process started.
            restarting=cfg.graceful_restart and self.key not in self.speaker.established_keys,
            restart_deadline=self.speaker.started + cfg.restart_time,
            restart_time=cfg.restart_time,
            connect_retry_time=cfg.connect_retry,
            connect_retry_max=cfg.connect_retry_max,
            accept_open_wait=self.speaker.accept_open_wait,
        )

    @property
    def ibgp(self) -> bool:
        if self.negotiated is not None:
            return self.negotiated.ibgp
        pas = self.config.peer_as
        return pas == "internal" or pas == self.local_as

    def socket_options(self) -> SocketOptions:
        cfg = self.config
        ttl = 255 if self.ibgp else (cfg.ebgp_multihop or 1)
        if cfg.min_ttl:
            ttl = 255
        return SocketOptions(cfg.password, ttl, cfg.min_ttl, cfg.vrf, cfg.local_address)

    # -- the FSM loop --------------------------------------------------------------------------
    def start(self) -> None:
        self._wanted = True
        if self.config.interface:
            if not self._watching:
                self._watching = True
                finder = self.speaker.router_finder()
                finder.watch(self.config.interface, self._router_found)
                self.router = finder.router(self.config.interface)
            if self.router is None:
                return  # starts when the router is found on the link
        self.session.start(self.loop.time())
        self._pump()

    def _router_found(self, interface: str, router: str | None) -> None:
        """The router on our link changed (or is gone): follow it."""
        if router == self.router:
            return
        old, self.router = self.router, router
        log.info(
            "peerAddressChanged" if router else "peerAddressLost",
            extra={"peer": self.key, "interface": interface, "address": router, "previous": old},
        )
        if old is not None and self._wanted:
            reason = "peer address changed" if router else "link down"
            self._stop_session(subcode=CEASE_OTHER_CONFIG_CHANGE, message=reason)
        if self.speaker.listener is not None and router is not None:
            self.speaker.listener.allow(router, self.config.password)
        self.speaker._emit(PeerAddressChanged(self.key, router))
        if router is not None and self._wanted:
            self.session.start(self.loop.time())
            self._pump()

    def _pump(self) -> None:
        """After every call into the session: write its bytes, act on its events, set the timer."""
        s = self.session
        while True:
            for conn_id, conn in list(self.conns.items()):
                data = s.data_to_send(conn_id)
                if data:
                    conn.stream.write(data)
            ev = s.next_event()
            if ev is None:
                break
            self._on_event(ev)
        deadline = s.get_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.session.handle_timer(self.loop.time())
        self._pump()

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, ConnectRequested):
            log.debug("connecting", extra={"peer": self.key, "conn": ev.conn_id})
            conn = _Conn(self, ev.conn_id, outgoing=True)
            self.conns[ev.conn_id] = conn
            conn.task = self._spawn(self._connect(conn))
        elif isinstance(ev, CloseConnection):
            log.debug("closing", extra={"peer": self.key, "conn": ev.conn_id, "reason": ev.reason})
            self._close_conn(ev.conn_id)
        elif isinstance(ev, SessionEstablished):
            self._established(ev.conn_id, ev.negotiated)
        elif isinstance(ev, SessionDown):
            self._down(ev)
        elif isinstance(ev, RouteRefreshRequested):
            log.info("routeRefreshRequested", extra={"peer": self.key, "afi": ev.afi})
            if ev.safi == SAFI_UNICAST:
                self.ribout.refresh(ev.afi, self.speaker.rib.desired(self.key, ev.afi))
                self._send_routes()
        elif isinstance(ev, EndOfRibReceived):
            c = self.session.counters
            log.info(
                "endOfRibReceived",
                extra={
                    "peer": self.key,
                    "afi": ev.afi,
                    "safi": ev.safi,
                    "prefixesReceived": c.prefixes_received,
                    "updatesReceived": c.updates_received,
                },
            )
        elif isinstance(ev, FamilyDisabled):
            log.warning(
                "familyDisabled",
                extra={"peer": self.key, "afi": ev.afi, "safi": ev.safi, "error": str(ev.error)},
            )

    async def _connect(self, conn: _Conn) -> None:
        cfg = self.config
        try:
            if not self.address:
                raise OSError("no peer address yet")
            sock = await dial(self.address, cfg.port, self.socket_options())
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            log.debug("connectFailed", extra={"peer": self.key, "error": str(exc)})
            if self.conns.pop(conn.conn_id, None) is not None:
                self.session.connection_failed(conn.conn_id, self.loop.time())
                self._pump()
            return
        if self.conns.get(conn.conn_id) is not conn:
            sock.close()
            return
        try:
            await conn.stream.attach(sock)
        except OSError:
            sock.close()
            if self.conns.pop(conn.conn_id, None) is not None:
                self.session.connection_failed(conn.conn_id, self.loop.time())
                self._pump()
            return
        self.session.connection_made(conn.conn_id, self.loop.time())
        self._pump()

    def accept(self, sock: socket.socket) -> None:
        """A connection from this peer arrived on the listener."""
        opts = self.socket_options()
        try:
            apply_options(sock, self.address, dataclasses.replace(opts, password=None))
        except OSError as exc:
            log.warning("acceptFailed", extra={"peer": self.key, "error": str(exc)})
            sock.close()
            return
        conn_id = self.session.accept_connection(self.loop.time())
        conn = _Conn(self, conn_id, outgoing=False)
        self.conns[conn_id] = conn
        conn.task = self._spawn(self._attach(conn, sock))
        self._pump()

    async def _attach(self, conn: _Conn, sock: socket.socket) -> None:
        try:
            await conn.stream.attach(sock)
        except OSError:
            sock.close()
            if self.conns.get(conn.conn_id) is conn:
                self._lost(conn.conn_id)

    def _data(self, conn_id: int, data: bytes) -> None:
        self.session.data_received(conn_id, data, self.loop.time())
        self._pump()

    def _lost(self, conn_id: int, exc: BaseException | None = None) -> None:
        conn = self.conns.pop(conn_id, None)
        if conn is None:
            return
        log.debug("connectionLost", extra={"peer": self.key, "conn": conn_id, "error": repr(exc)})
        self.session.connection_lost(conn_id, self.loop.time())
        self._pump()

    def _close_conn(self, conn_id: int) -> None:
        data = self.session.data_to_send(conn_id)
        conn = self.conns.pop(conn_id, None)
        if conn is None:
            return
        pending = conn.task is not None and not conn.task.done()
        if pending and conn.outgoing and conn.stream.transport is None:
            assert conn.task is not None
            conn.task.cancel()  # still dialling: give up the attempt (dial closes its socket)
            return
        # An accepted socket still being attached is closed by the stream once attached.
        if data:
            conn.stream.write(data)
        self._closing.add(conn.stream)
        conn.stream.close()
        self._spawn(self._forget_when_closed(conn.stream))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _forget_when_closed(self, stream: Stream) -> None:
        """Let a closed connection flush its last bytes (a NOTIFICATION), but not forever:
        towards a dead peer the flush would wait for TCP to give up (many minutes)."""
        try:
            async with asyncio.timeout(CLOSE_FLUSH_TIMEOUT):
                await stream.wait_closed()
        except TimeoutError:
            stream.abort()
        self._closing.discard(stream)

    # -- established session ---------------------------------------------------------------------
    def _established(self, conn_id: int, neg: Negotiated) -> None:
        conn = self.conns.get(conn_id)
        local = conn.stream.local_address() if conn else ""
        enh = (AFI_IPV4, SAFI_UNICAST, AFI_IPV6) in neg.extended_next_hop
        if self.config.interface:
            hops = interface_next_hops(self.config.interface, local)
            if enh:  # RFC 8950: IPv4 routes with our IPv6 next hop, as unnumbered routers expect
                hops = NextHops(None, hops.v6)
        else:
            hops = next_hops(local, self.config.address) if local else NextHops(None, None)
        v4_over_v6 = hops.v4 is None and enh
        self.negotiated = neg
        self.packer = Packer(
            SessionEncoding(self.local_as, neg.ibgp, neg.tx, hops.v4, hops.v6, v4_over_v6)
        )
        families = [afi for afi, safi in sorted(neg.families) if safi == SAFI_UNICAST]
        rib = self.speaker.rib
        self.ribout.start(families, {afi: rib.desired(self.key, afi) for afi in families})
        self._table_pending = True
        self.prefixes_sent = 0
        skipped = [afi for afi in families if not self.packer.can_send(afi)]
        log.info(
            "sessionEstablished",
            extra={
                "peer": self.key,
                "peerASN": neg.peer_as,
                "routerID": str(neg.peer_router_id),
                "localAddress": local,
                **self._unnumbered_fields(),
                "holdTime": neg.hold_time,
                "ibgp": neg.ibgp,
                "families": [f"afi{a}" for a in families],
                "gracefulRestart": neg.graceful_restart,
            },
        )
        if skipped:
            log.warning(
                "familyNotSent",
                extra={"peer": self.key, "afi": skipped, "reason": "no next hop of that family"},
            )
        self.speaker.established_keys.add(self.key)
        self.speaker._emit(PeerEstablished(self.key, neg.peer_as))
        self._send_routes()

    def _down(self, ev: SessionDown) -> None:
        was = ev.was_established
        self.last_down_reason = ev.reason
        if was:
            self.negotiated = None
            self.packer = None
            self.ribout.stop()
        if was or ev.notification_sent or ev.notification_received:
            log.info(
                "sessionDown",
                extra={
                    "peer": self.key,
                    "reason": ev.reason,
                    "wasEstablished": was,
                    "peerKeepsRoutes": ev.peer_keeps_routes,
                    **self._unnumbered_fields(),
                },
            )
            self.speaker._emit(PeerDown(self.key, ev.reason, ev.peer_keeps_routes))

    def _send_routes(self) -> None:
        """Feed UPDATEs to the session while TCP accepts them (backpressure)."""
        if self._sending or self.packer is None:
            return
        conn_id = self.session.established_conn_id
        conn = self.conns.get(conn_id) if conn_id is not None else None
        if conn is None:
            return
        self._sending = True
        try:
            stream = conn.stream
            packer = self.packer
            budget = 1 << 20  # yield to the loop after this many octets
            while stream.writable and budget > 0:
                batch: list[bytes] = []
                size = 0
                prefixes = 0
                eor_afi = 0
                while size < 65536:
                    msg = self.ribout.next_message(packer)
                    if msg is None:
                        break
                    if msg[2]:  # End-of-RIB: through the session, which keeps track of it
                        eor_afi = msg[2]
                        break
                    batch.append(msg[0])
                    size += len(msg[0])
                    prefixes += msg[1]
                if not batch and not eor_afi:
                    break
                now = self.loop.time()
                try:
                    if batch:
                        self.session.send_update(b"".join(batch), now=now, count=len(batch))
                    if eor_afi:
                        self.session.send_end_of_rib(eor_afi, SAFI_UNICAST, now=now)
                except SessionError:
                    return
                self.prefixes_sent += prefixes
                budget -= size
                stream.write(self.session.data_to_send(conn.conn_id))
            if self.ribout.idle:
                if self._table_pending:
                    self._table_pending = False
                    log.info(
                        "tableSent",
                        extra={"peer": self.key, "prefixes": self.ribout.announced},
                    )
                    self.speaker._emit(TableSent(self.key, self.ribout.announced))
            elif stream.writable:
                self.loop.call_soon(self._send_routes)
        finally:
            self._sending = False
        self._pump()

    # -- routes and lifecycle ------------------------------------------------------------------
    def route_changed(self, afi: int, key: bytes) -> None:
        if self.packer is None:
            return
        self.ribout.change(afi, key, self.speaker.rib.lookup(self.key, afi, key))
        self.speaker._schedule_flush(self)

    def metrics(self) -> dict[str, float]:
        """MetalLB's per-peer BGP metrics (names without the `metallb_bgp_` prefix)."""
        c = self.session.counters
        return {
            "session_up": 1.0 if self.session.state == State.ESTABLISHED else 0.0,
            "updates_total": c.updates_sent,
            "updates_total_received": c.updates_received,
            "announced_prefixes_total": self.ribout.announced,
            "pending_prefixes_total": self.ribout.pending_count,
            "opens_sent": c.opens_sent,
            "opens_received": c.opens_received,
            "notifications_sent": c.notifications_sent,
            "keepalives_sent": c.keepalives_sent,
            "keepalives_received": c.keepalives_received,
            "route_refresh_sent": c.route_refresh_sent,
            "total_sent": c.total_sent,
            "total_received": c.total_received,
        }

    def _unnumbered_fields(self) -> dict[str, str]:
        if not self.config.interface:
            return {}
        return {"interface": self.config.interface, "peerAddress": self.router or ""}

    def stop(
        self, *, subcode: int = CEASE_ADMIN_SHUTDOWN, message: str = "", graceful: bool = False
    ) -> None:
        self._wanted = False
        self._stop_session(subcode=subcode, message=message, graceful=graceful)

    def close(self) -> None:
        """Removed for good: stop following the link as well."""
        if self._watching and self.config.interface:
            self._watching = False
            self.speaker.router_finder().unwatch(self.config.interface, self._router_found)

    def _stop_session(
        self, *, subcode: int = CEASE_ADMIN_SHUTDOWN, message: str = "", graceful: bool = False
    ) -> None:
        self.session.stop(self.loop.time(), subcode=subcode, message=message, graceful=graceful)
        self._pump()
        for conn_id in list(self.conns):
            self._close_conn(conn_id)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def wait_closed(self, limit: float = 3.0) -> None:
        pending = list(self._closing)
        if pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit):
                    await asyncio.gather(*(s.wait_closed() for s in pending))
        for s in pending:
            s.abort()


PrefixLike = tuple[int, bytes] | str | ipaddress.IPv4Network | ipaddress.IPv6Network


def as_key(prefix: PrefixLike) -> tuple[int, bytes]:
    if isinstance(prefix, tuple):
        return prefix
    if isinstance(prefix, str):
        return prefix_key(prefix)
    return key_from_network(prefix)


# -- the speaker ----------------------------------------------------------------------------------


class Speaker:
    """The peer manager (see the module docstring)."""

    def __init__(
        self,
        local_as: int,
        router_id: str | None = None,
        *,
        node_name: str = "",
        listen_port: int | None = None,
        listen_addresses: tuple[str, ...] = ("0.0.0.0", "::"),
        listen_device: str | None = None,
        on_event: EventCallback | None = None,
        router_finder: RouterFinder | None = None,
        accept_open_wait: float = ACCEPT_OPEN_WAIT,
    ) -> None:
        self.local_as = local_as
        self.accept_open_wait = accept_open_wait  # see bgp.fsm.ACCEPT_OPEN_WAIT
        self.router_id = router_id
        self.node_name = node_name or socket.gethostname()
        self.listen_port = listen_port
        self.listen_addresses = listen_addresses
        self.listen_device = listen_device
        self.on_event = on_event
        self.rib = Rib()
        self.started = time.monotonic()  # the event loop's clock: restart deadlines use it
        self.established_keys: set[str] = set()  # peers that were Established at least once
        self.peers: dict[str, Peer] = {}
        self.listener: Listener | None = None
        self._flush_due: set[Peer] = set()
        self._flush_scheduled = False
        self._finder = router_finder

    def router_finder(self) -> RouterFinder:
        """Router discovery for unnumbered peers (created on first use)."""
        if self._finder is None:
            from l2.routers import RouterFinder

            self._finder = RouterFinder()
        return self._finder

    # -- peers ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.listen_port is not None and self.listener is None:
            self.listener = Listener(
                self._accepted, self.listen_port, self.listen_addresses, self.listen_device
            )
            for peer in self.peers.values():
                if peer.address:
                    self.listener.allow(peer.address, peer.config.password)
            self.listener.start()

    def _accepted(self, sock: socket.socket, address: str) -> None:
        want = ipaddress.ip_address(address)
        for peer in self.peers.values():
            if peer.address and ipaddress.ip_address(peer.address.split("%", 1)[0]) == want:
                peer.accept(sock)
                return
        sock.close()

    def add_peer(self, config: PeerConfig) -> Peer:
        """Add a peer, or reconfigure one with the same key (its session resets only if the
        configuration really changed)."""
        old = self.peers.get(config.key)
        if old is not None:
            if old.config == config:
                old.config = config  # e.g. a new name: nothing else to do
                return old
            self.remove_peer(
                config.key, subcode=CEASE_OTHER_CONFIG_CHANGE, message="configuration changed"
            )
        peer = Peer(self, config)
        self.peers[config.key] = peer
        if self.listener is not None and config.address:
            self.listener.allow(config.address, config.password)
        peer.start()
        return peer

    def remove_peer(
        self, key: str, *, subcode: int = CEASE_PEER_DECONFIGURED, message: str = "peer removed"
    ) -> None:
        peer = self.peers.pop(key, None)
        if peer is None:
            return
        if (
            self.listener is not None
            and peer.address
            and not any(p.address == peer.address for p in self.peers.values())
        ):
            self.listener.disallow(peer.address.split("%", 1)[0])
        self.rib.forget_peer(key)
        self._flush_due.discard(peer)
        peer.stop(subcode=subcode, message=message)
        peer.close()

    def set_peers(self, configs: Iterable[PeerConfig]) -> None:
        """Reconcile to exactly these peers; unchanged ones keep their sessions."""
        wanted = {c.key: c for c in configs}
        for key in list(self.peers):
            if key not in wanted:
                self.remove_peer(key)
        for cfg in wanted.values():
            self.add_peer(cfg)

    # -- routes ---------------------------------------------------------------------------
    def announce(
        self,
        prefix: PrefixLike,
        attrs: RouteAttrs = DEFAULT_ATTRS,
        peers: Iterable[str] | None = None,
    ) -> None:
        """Originate `prefix` to `peers` (peer keys `ADDR:PORT`; None: every peer, present
        and future). A prefix may be text (`203.0.113.7/32`), an ipaddress network, or the
        (AFI, NLRI bytes) key of bgp.packing.prefix_key (the fastest)."""
        afi, key = as_key(prefix)
        names = None if peers is None else list(peers)
        self._before_change(afi)
        self.rib.announce(afi, key, attrs, names)
        self._changed(afi, key, names)

    def withdraw(self, prefix: PrefixLike, peers: Iterable[str] | None = None) -> None:
        """Stop originating `prefix`; with `peers`, only their targeted announcement goes."""
        afi, key = as_key(prefix)
        names = None if peers is None else list(peers)
        self._before_change(afi)
        self.rib.withdraw(afi, key, names)
        self._changed(afi, key, names)

    def _before_change(self, afi: int) -> None:
        for peer in self.peers.values():
            peer.ribout.unshare(afi)

    def _changed(self, afi: int, key: bytes, names: list[str] | None) -> None:
        targets = (
            self.peers.values()
            if names is None
            else [self.peers[n] for n in names if n in self.peers]
        )
        for peer in targets:
            peer.route_changed(afi, key)

    def _schedule_flush(self, peer: Peer) -> None:
        self._flush_due.add(peer)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        due, self._flush_due = self._flush_due, set()
        for peer in due:
            peer._send_routes()

    # -- events and shutdown ----------------------------------------------------------------
    def _emit(self, event: SpeakerEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def metrics(self) -> dict[str, dict[str, float]]:
        return {key: peer.metrics() for key, peer in self.peers.items()}

    async def shutdown(self, message: str = "", *, graceful: bool = False) -> None:
        """Stop every session: Cease with `message` (RFC 8203/9003), or with `graceful`, a
        planned restart (no NOTIFICATION where graceful restart was negotiated)."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        peers = list(self.peers.values())
        for peer in peers:
            peer.stop(message=message, graceful=graceful)
            peer.close()
        await asyncio.gather(*(p.wait_closed() for p in peers))
        if self._finder is not None:
            await self._finder.close()
            self._finder = None
