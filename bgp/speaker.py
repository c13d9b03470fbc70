"""The BGP speaker: routes to originate, peers to send them to, and one session per peer.

This is the asyncio shell; the decisions live in pure modules beside it: `bgp.rib` (`Rib`, what
we originate; `RibOut`, one peer's Adj-RIB-Out and the batches of UPDATEs that bring the peer up
to date) and `bgp.nexthop` (the next hops of a session, chosen from the host's addresses).

- `Peer` — drives one `bgp.fsm.Session` over `bgp.transport` and writes its `RibOut`'s batches
  as fast as TCP drains them; keeps MetalLB's per-peer counters.
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

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bgp import nexthop
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
from bgp.nexthop import route_source
from bgp.packing import (
    DEFAULT_ATTRS,
    Packer,
    RouteAttrs,
    SessionEncoding,
    key_from_network,
    prefix_key,
)
from bgp.rib import WRITE_BUDGET, Rib, RibOut
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
        interface = self.config.interface
        host = nexthop.read_host_addresses() if interface or local else nexthop.HostAddresses()
        hops, v4_over_v6 = nexthop.for_session(local, self.config.address, interface, enh, host)
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
            budget = WRITE_BUDGET
            while stream.writable and budget > 0:
                batch = self.ribout.next_batch(packer)
                if batch is None:
                    break
                now = self.loop.time()
                try:
                    if batch.updates:
                        self.session.send_update(
                            b"".join(batch.updates), now=now, count=len(batch.updates)
                        )
                    if batch.eor_afi:
                        self.session.send_end_of_rib(batch.eor_afi, SAFI_UNICAST, now=now)
                except SessionError:
                    return
                self.prefixes_sent += batch.prefixes
                budget -= batch.octets
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
