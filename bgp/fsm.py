"""Sans-I/O BGP session: the RFC 4271 §8 finite state machine for one configured peer.

One `Session` per peer owns zero, one or two TCP connections (an outgoing one and an
incoming one can coexist until connection collision detection, §6.8, picks one).  It never
touches a socket or the clock: the driver passes `now` (seconds, monotonic) into every call,
and reads back bytes, a timer deadline and events, like aioquic's QuicConnection.

Commands (driver -> session)::

    s = Session(SessionConfig(local_as=64512, router_id=IPv4Address("198.51.100.11"),
                              peer_as=64500))           # or peer_as="internal"/"external"
    s.start(now)                                        # active: emits ConnectRequested
    s.connection_made(conn_id, now)                     # our connect() succeeded
    s.connection_failed(conn_id, now)                   # our connect() failed
    conn_id = s.accept_connection(now)                  # the peer connected to us
    s.connection_lost(conn_id, now)                     # TCP closed/reset under us
    s.data_received(conn_id, data, now)                 # feed <= 64 KiB per call
    s.handle_timer(now)                                 # when get_timer() is reached
    s.send_update(wire_bytes, now=now, count=1)         # pre-encoded UPDATE(s), Established
    s.send_updates([wire1, wire2], now=now)             # several, counted one by one
    s.send_end_of_rib(afi, safi, now=now)
    s.send_route_refresh(afi, safi, now=now)            # subtype=1/2: BoRR/EoRR (RFC 7313)
    s.stop(now, subcode=CEASE_ADMIN_SHUTDOWN, message="maintenance")   # Cease (+RFC 9003)
    s.stop(now, graceful=True)                          # planned restart: peer keeps routes

Outputs (session -> driver)::

    s.data_to_send(conn_id) -> bytes                    # drain after every call
    s.get_timer() -> float | None                       # earliest deadline
    s.next_event() -> Event | None                      # bgp.events, until None
    s.state, s.negotiated, s.established_conn_id, s.counters (MetalLB metrics)
    s.eor_received, s.eor_sent, s.end_of_rib_pending    # RFC 4724 bookkeeping
    s.disabled_families, s.last_down

Events: ConnectRequested(conn_id), CloseConnection(conn_id) (flush then close; also sent
to cancel a pending connect), SessionEstablished(negotiated), SessionDown(...),
UpdateReceived (aggregated per call: routes are validated, counted and dropped),
RouteRefreshRequested(afi, safi), EndOfRibReceived(afi, safi), FamilyDisabled.

Behaviour worth knowing:
- `state` is derived: Idle (not started), Connect (an outgoing connect pending), Active
  (waiting: passive, or between attempts), OpenSent / OpenConfirm / Established (the most
  advanced connection).  After a failure the session goes straight to Active with the
  ConnectRetry timer (exponential backoff with 0.75-1.0 jitter, capped) instead of
  parking in Idle; incoming connections are accepted meanwhile.  The backoff resets when a
  session reaches Established.
- Hold time: negotiated = min(ours, peer's); 0 disables keepalives and the hold timer;
  1-2 are refused (2/6) by the codec.  Keepalive = configured value or hold/3, never more
  than hold/3.  OpenSent uses the large initial hold time (240 s).
- Collision (§6.8): when an OPEN arrives and another connection is in OpenSent/OpenConfirm,
  the connection initiated by the speaker with the higher BGP identifier survives (equal
  identifiers: the higher AS, RFC 6286); the other gets Cease 6/7.  Against an Established
  connection the new one is closed with 6/7, unless the peer advertised graceful restart,
  in which case the old connection is taken as dead (RFC 4724 §4.2) and replaced.
- RFC 7606: a bad attribute only makes the UPDATE count as withdrawn (or is discarded);
  a broken MP_REACH/MP_UNREACH disables its family (FamilyDisabled), not the session.
- Shutdown: Cease with the caller's subcode and an RFC 9003 message; wrapped in Hard Reset
  (6/9) when both sides set the RFC 8538 N bit.  `stop(graceful=True)` with GR negotiated
  closes without NOTIFICATION (or, with N negotiated, a plain Cease 6/4 that the peer
  treats as a restart).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from bgp import capabilities as caps
from bgp.attributes import FLAG_EXTENDED_LENGTH, MpReachNlri, MpUnreachNlri
from bgp.context import IPV4_UNICAST, PRE_OPEN, CodecContext
from bgp.errors import (
    BAD_BGP_IDENTIFIER,
    BAD_PEER_AS,
    CEASE,
    CEASE_ADMIN_RESET,
    CEASE_ADMIN_SHUTDOWN,
    CEASE_CONNECTION_COLLISION,
    CEASE_HARD_RESET,
    FSM_ERROR,
    FSM_UNEXPECTED_IN_ESTABLISHED,
    FSM_UNEXPECTED_IN_OPENCONFIRM,
    FSM_UNEXPECTED_IN_OPENSENT,
    HOLD_TIMER_EXPIRED,
    OPEN_MESSAGE_ERROR,
    UNSUPPORTED_CAPABILITY,
    BGPError,
    ErrorAction,
    error_name,
)
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
    UpdateReceived,
)
from bgp.messages import (
    KEEPALIVE_BYTES,
    ROUTE_REFRESH_NORMAL,
    AttributeCache,
    Keepalive,
    Message,
    Notification,
    Open,
    RouteRefresh,
    Update,
    decode,
    encode,
    end_of_rib,
    iter_messages,
)
from bgp.nlri import Prefix

log = logging.getLogger("bgp")

LARGE_HOLD_TIME = 240.0  # RFC 4271 §8: "suggested" initial hold time in OpenSent
# An accepted connection must deliver the peer's OPEN within this (we send ours at once, so a
# peer using DelayOpen answers too): a connection that idles in OpenSent for the full large hold
# time only holds a descriptor. Outgoing connections keep LARGE_HOLD_TIME (docs/security.md).
ACCEPT_OPEN_WAIT = 30.0
MAX_REPORTED_PROBLEMS = 8
# Prefixes of the peer's table tracked per session (keys only, ~150 bytes each): a speaker uses
# no received route, so a router sending a full Internet table is only counted up to here.
MAX_RECEIVED_TRACKED = 100_000


class State(enum.Enum):
    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


_RANK = {
    State.CONNECT: 1,
    State.OPEN_SENT: 2,
    State.OPEN_CONFIRM: 3,
    State.ESTABLISHED: 4,
}


class SessionError(RuntimeError):
    """A command that the session cannot honour in its current state (a driver bug)."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything the OPEN we send and the checks on the peer's OPEN depend on."""

    local_as: int
    router_id: ipaddress.IPv4Address
    peer_as: int | Literal["internal", "external"] | None = None  # None: accept any
    hold_time: int = 90
    keepalive_time: float | None = None  # None: hold_time / 3
    passive: bool = False
    families: tuple[tuple[int, int], ...] = (IPV4_UNICAST,)
    four_octet_as: bool = True
    route_refresh: bool = True
    enhanced_route_refresh: bool = False
    extended_message: bool = True
    extended_next_hop: tuple[tuple[int, int, int], ...] = ()  # e.g. ((1, 1, 2),)
    graceful_restart: bool = False
    restart_time: int = 120
    restarting: bool = False  # GR "R" bit: we just restarted (cleared once Established)
    restart_deadline: float | None = None  # with `restarting`: OPENs sent from then on lack R
    forwarding_preserved: bool = True  # GR per-family "F" bit
    gr_notification: bool = True  # RFC 8538 "N" bit (only with graceful_restart)
    extra_capabilities: tuple[caps.Capability, ...] = ()
    required_capabilities: tuple[int, ...] = ()  # capability codes the peer must send
    connect_retry_time: float = 1.0  # first ConnectRetry delay
    connect_retry_max: float = 60.0  # backoff cap
    connect_timeout: float = 10.0  # give up on a connect() after this long
    open_hold_time: float = LARGE_HOLD_TIME
    accept_open_wait: float = ACCEPT_OPEN_WAIT  # OpenSent hold time of accepted connections

    def __post_init__(self) -> None:
        if self.hold_time in (1, 2) or not 0 <= self.hold_time <= 0xFFFF:
            raise ValueError(f"hold time {self.hold_time}: must be 0 or 3-65535")
        if not 1 <= self.local_as <= 0xFFFFFFFF:
            raise ValueError(f"local AS {self.local_as} out of range")
        if self.keepalive_time is not None and self.keepalive_time < 0:
            raise ValueError("keepalive time must be >= 0")
        if not 0 <= self.restart_time <= 4095:
            raise ValueError(f"restart time {self.restart_time}: must be 0-4095 (12 bits)")
        if self.connect_retry_time <= 0 or self.connect_retry_max < self.connect_retry_time:
            raise ValueError("connect retry: need 0 < connect_retry_time <= connect_retry_max")
        if self.connect_timeout <= 0 or self.open_hold_time <= 0 or self.accept_open_wait <= 0:
            raise ValueError("connect timeout and open hold and wait times must be positive")

    def capabilities(self) -> tuple[caps.Capability, ...]:
        out: list[caps.Capability] = [caps.Multiprotocol(a, s) for a, s in self.families]
        if self.route_refresh:
            out.append(caps.RouteRefresh())
        if self.enhanced_route_refresh:
            out.append(caps.EnhancedRouteRefresh())
        if self.extended_next_hop:
            out.append(caps.ExtendedNextHop(self.extended_next_hop))
        if self.extended_message:
            out.append(caps.ExtendedMessage())
        if self.graceful_restart:
            out.append(
                caps.GracefulRestart(
                    restart_time=self.restart_time,
                    restart_state=self.restarting,
                    notification=self.gr_notification,
                    families=tuple(
                        caps.GracefulRestartFamily(a, s, self.forwarding_preserved)
                        for a, s in self.families
                    ),
                )
            )
        if self.four_octet_as:
            out.append(caps.FourOctetAS(self.local_as))
        out.extend(self.extra_capabilities)
        return tuple(out)

    def open_message(self) -> Open:
        return Open(self.local_as, self.hold_time, self.router_id, self.capabilities())


@dataclass(slots=True)
class SessionCounters:
    """Per-peer counters (MetalLB metric names in comments)."""

    opens_sent: int = 0  # metallb_bgp_opens_sent
    opens_received: int = 0  # metallb_bgp_opens_received
    notifications_sent: int = 0  # metallb_bgp_notifications_sent
    notifications_received: int = 0
    updates_sent: int = 0  # metallb_bgp_updates_total
    updates_received: int = 0
    keepalives_sent: int = 0  # metallb_bgp_keepalives_sent
    keepalives_received: int = 0  # metallb_bgp_keepalives_received
    route_refresh_sent: int = 0  # metallb_bgp_route_refresh_sent
    route_refresh_received: int = 0
    total_sent: int = 0  # metallb_bgp_total_sent
    total_received: int = 0  # metallb_bgp_total_received
    prefixes_received: int = 0  # NLRI announcements received, every session summed
    prefixes_withdrawn_received: int = 0
    updates_treated_as_withdraw: int = 0
    attributes_discarded: int = 0
    established_transitions: int = 0


@dataclass(slots=True)
class _Conn:
    id: int
    outgoing: bool
    state: State
    rx: bytearray = field(default_factory=bytearray)
    tx: bytearray = field(default_factory=bytearray)
    connect_deadline: float | None = None
    hold_deadline: float | None = None
    keepalive_deadline: float | None = None
    peer_open: Open | None = None
    negotiated: Negotiated | None = None
    rx_ctx: CodecContext = PRE_OPEN
    closed: bool = False
    attr_cache: AttributeCache = field(default_factory=AttributeCache)


class Session:
    """The FSM of one BGP peer (see the module docstring for the API)."""

    def __init__(self, config: SessionConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.counters = SessionCounters()
        self._rng = rng or random.Random()
        self._conns: dict[int, _Conn] = {}
        self._events: deque[Event] = deque()
        self._next_id = 1
        self._started = False
        self._retry_deadline: float | None = None
        self._retry_attempt = 0
        self._closed_tx: dict[int, bytes] = {}  # final bytes of connections we closed
        self.disabled_families: set[tuple[int, int]] = set()
        self.eor_received: set[tuple[int, int]] = set()
        self.eor_sent: set[tuple[int, int]] = set()
        self.last_down: SessionDown | None = None
        # The peer's current routes, as keys only (what FRR shows as PfxRcd); see received_count.
        self._received: set[tuple[int, int, Prefix]] = set()
        self.received_overflow = False

    @property
    def received_count(self) -> int:
        """Prefixes the peer advertises to us now, on this session (0 when it is down). Exact up
        to MAX_RECEIVED_TRACKED; past it new prefixes are not tracked and `received_overflow` is
        set, so the count is a lower bound."""
        return len(self._received)

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> State:
        if not self._started:
            return State.IDLE
        best: State | None = None
        for conn in self._conns.values():
            if best is None or _RANK[conn.state] > _RANK[best]:
                best = conn.state
        if best is None:
            return State.ACTIVE
        return best

    @property
    def established_conn_id(self) -> int | None:
        conn = self._established_or_none()
        return None if conn is None else conn.id

    @property
    def negotiated(self) -> Negotiated | None:
        conn = self._established_or_none()
        return None if conn is None else conn.negotiated

    @property
    def end_of_rib_pending(self) -> frozenset[tuple[int, int]]:
        """Negotiated families whose End-of-RIB the peer has not sent yet (RFC 4724)."""
        neg = self.negotiated
        if neg is None:
            return frozenset()
        return frozenset(neg.families - self.eor_received)

    @property
    def connection_ids(self) -> list[int]:
        return list(self._conns)

    @property
    def retry_delay_bounds(self) -> tuple[float, float]:
        """(min, max) of the next ConnectRetry delay, for tests and logs."""
        base = min(
            self.config.connect_retry_max,
            self.config.connect_retry_time * (2**self._retry_attempt),
        )
        return (base * 0.75, base)

    # ------------------------------------------------------------------ outputs

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self, conn_id: int) -> bytes:
        conn = self._conns.get(conn_id)
        if conn is None:
            return self._closed_tx.pop(conn_id, b"")
        if not conn.tx:
            return b""
        out = bytes(conn.tx)
        conn.tx.clear()
        return out

    def get_timer(self) -> float | None:
        deadlines = [self._retry_deadline] if self._retry_deadline is not None else []
        for conn in self._conns.values():
            for d in (conn.connect_deadline, conn.hold_deadline, conn.keepalive_deadline):
                if d is not None:
                    deadlines.append(d)
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ commands

    def start(self, now: float) -> None:
        """ManualStart: begin connecting (active) or waiting for the peer (passive)."""
        if self._started:
            return
        self._started = True
        self._retry_attempt = 0
        self._retry_deadline = None
        if not self.config.passive:
            self._initiate(now)

    def stop(
        self,
        now: float,
        *,
        subcode: int = CEASE_ADMIN_SHUTDOWN,
        message: str = "",
        graceful: bool = False,
    ) -> None:
        """ManualStop.  Cease with `subcode` (6/2 admin shutdown, 6/3 peer de-configured,
        6/6 config change, 6/10 BFD down, ...) and an RFC 9003 message; Hard Reset where
        RFC 8538 was negotiated.  `graceful=True` with GR negotiated: planned restart,
        the peer keeps our routes (no NOTIFICATION, or Cease 6/4 under RFC 8538)."""
        if not self._started:
            return
        self._started = False
        self._retry_deadline = None
        for conn in list(self._conns.values()):
            if conn.state == State.CONNECT:
                self._close(conn, "session stopped")
                continue
            neg = conn.negotiated
            note: Notification | None
            keeps = False
            if graceful and conn.state == State.ESTABLISHED and neg and neg.graceful_restart:
                keeps = True
                if neg.hard_reset:
                    note = Notification.cease(
                        CEASE_ADMIN_RESET if subcode == CEASE_ADMIN_SHUTDOWN else subcode,
                        message,
                    )
                else:
                    note = None
                reason = "planned restart (graceful restart)"
            else:
                note = Notification.cease(subcode, message)
                if neg and neg.hard_reset:
                    note = note.hard_reset()
                reason = error_name(CEASE, subcode)
                if message:
                    reason += f": {message}"
            self._down(conn, reason, sent=note, peer_keeps_routes=keeps)

    def accept_connection(self, now: float) -> int:
        """An incoming TCP connection from the peer; returns its conn_id.

        Refused (CloseConnection) when the session is not started.  Otherwise we send our
        OPEN at once and let collision detection decide which connection survives; the peer's
        OPEN is due within `accept_open_wait` (else Hold Timer Expired, 4/0)."""
        conn = self._new_conn(outgoing=False, state=State.OPEN_SENT)
        if not self._started:
            self._close(conn, "session not started: connection refused")
            return conn.id
        self._send_open(conn, now)
        conn.hold_deadline = now + min(self.config.open_hold_time, self.config.accept_open_wait)
        return conn.id

    def connection_made(self, conn_id: int, now: float) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.state != State.CONNECT:
            return
        conn.connect_deadline = None
        if self.established_conn_id is not None:
            self._close(conn, "session already established")
            return
        self._send_open(conn, now)

    def connection_failed(self, conn_id: int, now: float) -> None:
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return
        self._schedule_retry(now)

    def connection_lost(self, conn_id: int, now: float) -> None:
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        if conn.state == State.CONNECT:
            self._conns.pop(conn_id, None)
            self._schedule_retry(now)
            return
        neg = conn.negotiated
        keeps = bool(neg and neg.graceful_restart and conn.state == State.ESTABLISHED)
        self._down(conn, "connection closed by peer", peer_keeps_routes=keeps, emit_close=False)
        self._closed_tx.pop(conn_id, None)
        self._schedule_retry(now)

    def data_received(self, conn_id: int, data: bytes, now: float) -> None:
        """Feed bytes read from the connection; all complete messages are handled."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.state == State.CONNECT:
            return
        conn.rx += data
        agg = _UpdateAggregate()
        try:
            while not conn.closed:
                max_size = conn.rx_ctx.max_message_size
                resplit = False
                messages = iter_messages(conn.rx, max_size)
                try:
                    for raw in messages:
                        self.counters.total_received += 1
                        self._handle(conn, decode(raw, conn.rx_ctx, conn.attr_cache), now, agg)
                        if conn.closed:
                            break
                        if conn.rx_ctx.max_message_size != max_size:
                            resplit = True  # the OPEN raised the limit: re-split the rest
                            break
                finally:
                    messages.close()
                if not resplit:
                    break
        except BGPError as err:
            if not conn.closed:
                self._protocol_error(conn, err, now)
        if agg.updates:
            self._events.append(agg.event(conn.id))

    def handle_timer(self, now: float) -> None:
        if self._retry_deadline is not None and now >= self._retry_deadline:
            self._retry_deadline = None
            if (
                self._started
                and not self.config.passive
                and not self._has_outgoing()
                and self.established_conn_id is None
            ):
                self._initiate(now)
        for conn in list(self._conns.values()):
            if conn.closed:
                continue
            if conn.connect_deadline is not None and now >= conn.connect_deadline:
                conn.connect_deadline = None
                self._conns.pop(conn.id, None)
                self._events.append(CloseConnection(conn.id, "connect timed out"))
                self._schedule_retry(now)
                continue
            if conn.hold_deadline is not None and now >= conn.hold_deadline:
                self._down(
                    conn,
                    "hold timer expired",
                    sent=Notification(HOLD_TIMER_EXPIRED, 0),
                )
                self._schedule_retry(now)
                continue
            if conn.keepalive_deadline is not None and now >= conn.keepalive_deadline:
                self._send_keepalive(conn)
                neg = conn.negotiated
                interval = neg.keepalive_time if neg else 0.0
                if interval > 0:
                    nxt = conn.keepalive_deadline + interval
                    conn.keepalive_deadline = nxt if nxt > now else now + interval
                else:
                    conn.keepalive_deadline = None

    def send_update(self, data: bytes, *, now: float | None = None, count: int = 1) -> None:
        """Queue pre-encoded UPDATE message(s) (`count` of them) on the established
        connection.  With `now`, the keepalive timer restarts (an UPDATE is proof of life)."""
        conn = self._established()
        conn.tx += data
        self.counters.updates_sent += count
        self.counters.total_sent += count
        if now is not None and conn.negotiated and conn.negotiated.keepalive_time > 0:
            conn.keepalive_deadline = now + conn.negotiated.keepalive_time

    def send_updates(self, messages: Iterable[bytes], *, now: float | None = None) -> None:
        data = list(messages)
        if data:
            self.send_update(b"".join(data), now=now, count=len(data))

    def send_end_of_rib(self, afi: int, safi: int, *, now: float | None = None) -> None:
        self.send_update(end_of_rib(afi, safi), now=now)
        self.eor_sent.add((afi, safi))

    def send_route_refresh(
        self,
        afi: int,
        safi: int,
        *,
        now: float | None = None,
        subtype: int = ROUTE_REFRESH_NORMAL,
    ) -> None:
        """Ask the peer to resend its routes (RFC 2918), or mark the beginning/end of our
        own re-advertisement with subtype 1 (BoRR) / 2 (EoRR) under RFC 7313."""
        conn = self._established()
        neg = conn.negotiated
        if neg is None or not neg.route_refresh:
            raise SessionError("the peer did not advertise the route refresh capability")
        if subtype != ROUTE_REFRESH_NORMAL and not neg.enhanced_route_refresh:
            raise SessionError("enhanced route refresh (RFC 7313) was not negotiated")
        conn.tx += encode(RouteRefresh(afi, safi, subtype), neg.tx)
        self.counters.route_refresh_sent += 1
        self.counters.total_sent += 1

    # ------------------------------------------------------------------ internals

    def _established_or_none(self) -> _Conn | None:
        for conn in self._conns.values():
            if conn.state == State.ESTABLISHED:
                return conn
        return None

    def _established(self) -> _Conn:
        conn = self._established_or_none()
        if conn is None:
            raise SessionError("session is not established")
        return conn

    def _has_outgoing(self) -> bool:
        return any(c.outgoing for c in self._conns.values())

    def _new_conn(self, outgoing: bool, state: State) -> _Conn:
        conn = _Conn(self._next_id, outgoing, state)
        self._next_id += 1
        self._conns[conn.id] = conn
        return conn

    def _initiate(self, now: float) -> None:
        conn = self._new_conn(outgoing=True, state=State.CONNECT)
        conn.connect_deadline = now + self.config.connect_timeout
        self._events.append(ConnectRequested(conn.id))

    def _schedule_retry(self, now: float) -> None:
        if not self._started or self.config.passive or self._retry_deadline is not None:
            return
        if self._has_outgoing() or self.established_conn_id is not None:
            return
        low, high = self.retry_delay_bounds
        self._retry_deadline = now + self._rng.uniform(low, high)
        self._retry_attempt += 1

    def _send_open(self, conn: _Conn, now: float) -> None:
        conn.state = State.OPEN_SENT
        deadline = self.config.restart_deadline
        if self.config.restarting and deadline is not None and now >= deadline:
            self._restart_over()
        conn.tx += encode(self.config.open_message())
        self.counters.opens_sent += 1
        self.counters.total_sent += 1
        conn.hold_deadline = now + self.config.open_hold_time

    def _send_keepalive(self, conn: _Conn) -> None:
        conn.tx += KEEPALIVE_BYTES
        self.counters.keepalives_sent += 1
        self.counters.total_sent += 1

    def _send_notification(self, conn: _Conn, note: Notification) -> None:
        ctx = conn.negotiated.tx if conn.negotiated else PRE_OPEN
        try:
            conn.tx += encode(note, ctx)
        except ValueError:  # data too long for the message: truncate
            conn.tx += encode(Notification(note.code, note.subcode, note.data[:4000]), ctx)
        self.counters.notifications_sent += 1
        self.counters.total_sent += 1

    def _close(self, conn: _Conn, reason: str) -> None:
        """Forget the connection; its pending bytes stay readable via data_to_send."""
        conn.closed = True
        self._conns.pop(conn.id, None)
        if conn.tx:
            self._closed_tx[conn.id] = bytes(conn.tx)
            conn.tx.clear()
        self._events.append(CloseConnection(conn.id, reason))

    def _down(
        self,
        conn: _Conn,
        reason: str,
        *,
        sent: Notification | None = None,
        received: Notification | None = None,
        peer_keeps_routes: bool = False,
        emit_close: bool = True,
        report: bool = True,
    ) -> None:
        was_established = conn.state == State.ESTABLISHED
        neg = conn.negotiated
        if (
            was_established
            and sent is not None
            and neg is not None
            and neg.graceful_restart
            and neg.hard_reset
            and not (sent.code == CEASE and sent.subcode == CEASE_HARD_RESET)
        ):
            peer_keeps_routes = True  # RFC 8538: only a Hard Reset flushes our routes
        if sent is not None:
            self._send_notification(conn, sent)
        if emit_close:
            self._close(conn, reason)
        else:
            conn.closed = True
            self._conns.pop(conn.id, None)
        if report:
            event = SessionDown(conn.id, reason, was_established, sent, received, peer_keeps_routes)
            self.last_down = event
            self._events.append(event)
            if was_established:
                self.eor_received.clear()
                self.eor_sent.clear()
                self.disabled_families.clear()
                self._received.clear()
                self.received_overflow = False

    def _protocol_error(self, conn: _Conn, err: BGPError, now: float) -> None:
        log.debug("bgp protocol error on connection %d: %r", conn.id, err)
        self._down(conn, f"{err.name}: {err.reason}", sent=Notification.from_error(err))
        self._schedule_retry(now)

    def _handle(self, conn: _Conn, msg: Message, now: float, agg: _UpdateAggregate) -> None:
        state = conn.state
        if isinstance(msg, Update):  # the common case first
            self.counters.updates_received += 1
            if state != State.ESTABLISHED:
                self._fsm_error(conn, now, "UPDATE")
                return
            self._restart_hold(conn, now)
            self._handle_update(conn, msg, agg)
            return
        if isinstance(msg, Notification):
            self.counters.notifications_received += 1
            neg = conn.negotiated
            keeps = bool(
                neg
                and neg.graceful_restart
                and neg.hard_reset
                and state == State.ESTABLISHED
                and not (msg.code == CEASE and msg.subcode == CEASE_HARD_RESET)
            )
            reason = f"notification received: {error_name(msg.code, msg.subcode)}"
            text = msg.shutdown_message
            if text:
                reason += f": {text}"
            self._down(conn, reason, received=msg, peer_keeps_routes=keeps)
            self._schedule_retry(now)
            return
        if isinstance(msg, Open):
            self.counters.opens_received += 1
            if state != State.OPEN_SENT:
                self._fsm_error(conn, now, "OPEN")
                return
            self._handle_open(conn, msg, now)
            return
        if isinstance(msg, Keepalive):
            self.counters.keepalives_received += 1
            if state == State.OPEN_SENT:
                self._fsm_error(conn, now, "KEEPALIVE")
                return
            self._restart_hold(conn, now)
            if state == State.OPEN_CONFIRM:
                self._become_established(conn, now)
            return
        if isinstance(msg, RouteRefresh):
            self.counters.route_refresh_received += 1
            if state != State.ESTABLISHED:
                self._fsm_error(conn, now, "ROUTE-REFRESH")
                return
            self._restart_hold(conn, now)
            neg = conn.negotiated
            if (
                neg is not None
                and msg.subtype == ROUTE_REFRESH_NORMAL
                and (msg.afi, msg.safi) in neg.families
            ):
                self._events.append(RouteRefreshRequested(msg.afi, msg.safi))
            return

    def _fsm_error(self, conn: _Conn, now: float, what: str) -> None:
        subcode = {
            State.OPEN_SENT: FSM_UNEXPECTED_IN_OPENSENT,
            State.OPEN_CONFIRM: FSM_UNEXPECTED_IN_OPENCONFIRM,
            State.ESTABLISHED: FSM_UNEXPECTED_IN_ESTABLISHED,
        }.get(conn.state, 0)
        self._down(
            conn,
            f"unexpected {what} in {conn.state.value}",
            sent=Notification(FSM_ERROR, subcode),
        )
        self._schedule_retry(now)

    def _restart_hold(self, conn: _Conn, now: float) -> None:
        neg = conn.negotiated
        if neg is not None and neg.hold_time > 0:
            conn.hold_deadline = now + neg.hold_time

    def _check_open(self, peer: Open) -> None:
        cfg = self.config
        want = cfg.peer_as
        if want == "internal":
            ok = peer.asn == cfg.local_as
        elif want == "external":
            ok = peer.asn != cfg.local_as
        elif want is None:
            ok = True
        else:
            ok = peer.asn == want
        if not ok:
            raise BGPError(
                OPEN_MESSAGE_ERROR,
                BAD_PEER_AS,
                reason=f"peer AS {peer.asn}, expected {want}",
            )
        if peer.asn == cfg.local_as and peer.router_id == cfg.router_id:
            raise BGPError(
                OPEN_MESSAGE_ERROR,
                BAD_BGP_IDENTIFIER,
                reason=f"iBGP peer uses our BGP identifier {peer.router_id}",
            )
        codes = {c.code for c in peer.capabilities}
        missing = [c for c in cfg.required_capabilities if c not in codes]
        if missing:
            ours = {c.code: c for c in cfg.capabilities()}
            data = b"".join(
                caps.encode_capability(ours[c]) if c in ours else bytes((c, 0)) for c in missing
            )
            raise BGPError(
                OPEN_MESSAGE_ERROR,
                UNSUPPORTED_CAPABILITY,
                data,
                reason="peer lacks required capabilities "
                + ", ".join(caps.CAPABILITY_NAMES.get(c, str(c)) for c in missing),
            )

    def _negotiate(self, peer: Open) -> Negotiated:
        cfg = self.config
        local = cfg.open_message()
        lc = local.capabilities
        pc = peer.capabilities

        def has(capset: tuple[caps.Capability, ...], code: int) -> bool:
            return any(c.code == code for c in capset)

        local_fams = {(c.afi, c.safi) for c in lc if isinstance(c, caps.Multiprotocol)}
        peer_fams = {(c.afi, c.safi) for c in pc if isinstance(c, caps.Multiprotocol)}
        if not has(pc, caps.CAP_MULTIPROTOCOL):
            peer_fams = {IPV4_UNICAST}  # RFC 4760: no MP capability means IPv4 unicast
        four = has(lc, caps.CAP_FOUR_OCTET_AS) and has(pc, caps.CAP_FOUR_OCTET_AS)
        ext_msg = has(lc, caps.CAP_EXTENDED_MESSAGE) and has(pc, caps.CAP_EXTENDED_MESSAGE)
        local_enh = {e for c in lc if isinstance(c, caps.ExtendedNextHop) for e in c.entries}
        peer_enh = {e for c in pc if isinstance(c, caps.ExtendedNextHop) for e in c.entries}

        def add_path(capset: tuple[caps.Capability, ...], mode: int) -> set[tuple[int, int]]:
            return {
                (a, s)
                for c in capset
                if isinstance(c, caps.AddPath)
                for a, s, m in c.entries
                if m & mode
            }

        rx_ap = add_path(lc, caps.ADD_PATH_RECEIVE) & add_path(pc, caps.ADD_PATH_SEND)
        tx_ap = add_path(lc, caps.ADD_PATH_SEND) & add_path(pc, caps.ADD_PATH_RECEIVE)
        local_gr = next((c for c in lc if isinstance(c, caps.GracefulRestart)), None)
        peer_gr = next((c for c in pc if isinstance(c, caps.GracefulRestart)), None)
        hold = min(cfg.hold_time, peer.hold_time)
        if hold == 0:
            keepalive = 0.0
        else:
            keepalive = hold / 3
            if cfg.keepalive_time is not None and cfg.keepalive_time > 0:
                keepalive = min(cfg.keepalive_time, keepalive)
        rr = has(lc, caps.CAP_ROUTE_REFRESH) and (
            has(pc, caps.CAP_ROUTE_REFRESH) or has(pc, caps.CAP_ROUTE_REFRESH_CISCO)
        )
        return Negotiated(
            local_as=cfg.local_as,
            peer_as=peer.asn,
            local_router_id=cfg.router_id,
            peer_router_id=peer.router_id,
            hold_time=hold,
            keepalive_time=keepalive,
            four_octet_as=four,
            families=frozenset(local_fams & peer_fams),
            extended_message=ext_msg,
            extended_next_hop=frozenset(local_enh & peer_enh),
            route_refresh=rr,
            enhanced_route_refresh=has(lc, caps.CAP_ENHANCED_ROUTE_REFRESH)
            and has(pc, caps.CAP_ENHANCED_ROUTE_REFRESH),
            graceful_restart=local_gr is not None and peer_gr is not None,
            local_graceful_restart=local_gr,
            peer_graceful_restart=peer_gr,
            hard_reset=bool(
                local_gr and peer_gr and local_gr.notification and peer_gr.notification
            ),
            rx=CodecContext(four, frozenset(rx_ap), ext_msg),
            tx=CodecContext(four, frozenset(tx_ap), ext_msg),
            local_open=local,
            peer_open=peer,
        )

    def _handle_open(self, conn: _Conn, peer: Open, now: float) -> None:
        try:
            self._check_open(peer)
        except BGPError as err:
            self._down(conn, f"{err.name}: {err.reason}", sent=Notification.from_error(err))
            self._schedule_retry(now)
            return
        conn.peer_open = peer
        neg = self._negotiate(peer)
        conn.negotiated = neg
        conn.rx_ctx = neg.rx
        conn.state = State.OPEN_CONFIRM
        self._send_keepalive(conn)
        conn.hold_deadline = now + neg.hold_time if neg.hold_time else None
        conn.keepalive_deadline = now + neg.keepalive_time if neg.keepalive_time else None
        self._resolve_collisions(conn, peer)

    def _resolve_collisions(self, conn: _Conn, peer: Open) -> None:
        for other in list(self._conns.values()):
            if other is conn or other.state == State.CONNECT:
                continue
            if other.state == State.ESTABLISHED:
                neg = other.negotiated
                if neg and neg.peer_graceful_restart is not None:
                    # RFC 4724 §4.2: the peer restarted; the old session is dead.
                    self._down(
                        other,
                        "peer reconnected (graceful restart): old connection replaced",
                        peer_keeps_routes=True,
                    )
                    continue
                self._down(
                    conn,
                    "connection collision with an established session",
                    sent=Notification(CEASE, CEASE_CONNECTION_COLLISION),
                    report=False,
                )
                return
            loser = self._collision_loser(conn, other, peer)
            self._down(
                loser,
                "connection collision resolution",
                sent=Notification(CEASE, CEASE_CONNECTION_COLLISION),
                report=False,
            )
            if loser is conn:
                return

    def _collision_loser(self, a: _Conn, b: _Conn, peer: Open) -> _Conn:
        if a.outgoing == b.outgoing:
            return b if b.id < a.id else a  # keep the newer connection
        local_id = int(self.config.router_id)
        remote_id = int(peer.router_id)
        if local_id != remote_id:
            keep_outgoing = local_id > remote_id
        else:  # RFC 6286 §2.3: equal identifiers, the larger AS's connection wins
            keep_outgoing = self.config.local_as > peer.asn
        outgoing, incoming = (a, b) if a.outgoing else (b, a)
        return incoming if keep_outgoing else outgoing

    def _restart_over(self) -> None:
        """RFC 4724 §4.1: the R bit marks the OPENs of a speaker that has just restarted; once
        a session is back (or the restart time is over) later OPENs are ordinary ones."""
        self.config = dataclasses.replace(self.config, restarting=False)

    def _become_established(self, conn: _Conn, now: float) -> None:
        conn.state = State.ESTABLISHED
        if self.config.restarting:
            self._restart_over()
        self._retry_attempt = 0
        self._retry_deadline = None
        self.counters.established_transitions += 1
        self.eor_received.clear()
        self.eor_sent.clear()
        self.disabled_families.clear()
        self._received.clear()
        self.received_overflow = False
        for other in list(self._conns.values()):
            if other is not conn and other.state == State.CONNECT:
                self._close(other, "session established on another connection")
        assert conn.negotiated is not None
        self._events.append(SessionEstablished(conn.id, conn.negotiated))

    def _handle_update(self, conn: _Conn, upd: Update, agg: _UpdateAggregate) -> None:
        agg.updates += 1
        eor = upd.end_of_rib()
        if eor is not None:
            self.eor_received.add(eor)
            self._events.append(EndOfRibReceived(*eor))
            return
        withdraw = False
        for problem in upd.problems:
            if len(agg.problems) < MAX_REPORTED_PROBLEMS:
                agg.problems.append(problem)
            if problem.action == ErrorAction.TREAT_AS_WITHDRAW:
                withdraw = True
            elif problem.action == ErrorAction.ATTRIBUTE_DISCARD:
                self.counters.attributes_discarded += 1
            elif problem.action == ErrorAction.AFISAFI_DISABLE:
                fam = _problem_family(problem)
                if fam is not None and fam not in self.disabled_families:
                    self.disabled_families.add(fam)
                    self._events.append(FamilyDisabled(fam[0], fam[1], problem))
        announced = len(upd.nlri)
        withdrawn = len(upd.withdrawn)
        if upd.nlri or upd.withdrawn:
            agg.families.add(IPV4_UNICAST)
        for attr in upd.attributes:
            if isinstance(attr, MpReachNlri):
                fam = (attr.afi, attr.safi)
                if fam not in self.disabled_families:
                    agg.families.add(fam)
                    announced += len(attr.nlri) or (1 if attr.raw_nlri else 0)
            elif isinstance(attr, MpUnreachNlri):
                fam = (attr.afi, attr.safi)
                if fam not in self.disabled_families:
                    agg.families.add(fam)
                    withdrawn += len(attr.withdrawn) or (1 if attr.raw_withdrawn else 0)
        self._track_received(upd, withdraw)
        if withdraw:
            self.counters.updates_treated_as_withdraw += 1
            agg.treated += 1
            withdrawn += announced
            announced = 0
        agg.announced += announced
        agg.withdrawn += withdrawn
        self.counters.prefixes_received += announced
        self.counters.prefixes_withdrawn_received += withdrawn

    def _track_received(self, upd: Update, withdraw_all: bool) -> None:
        """Keep the set of prefixes the peer advertises (unicast and multicast, whose NLRI is
        parsed); an UPDATE treated as withdraw (RFC 7606) removes what it announced."""
        table = self._received
        gone: list[tuple[int, int, Prefix]] = [(1, 1, p) for p in upd.withdrawn]
        new: list[tuple[int, int, Prefix]] = [(1, 1, p) for p in upd.nlri]
        for attr in upd.attributes:
            if isinstance(attr, MpReachNlri):
                new.extend((attr.afi, attr.safi, p) for p in attr.nlri)
            elif isinstance(attr, MpUnreachNlri):
                gone.extend((attr.afi, attr.safi, p) for p in attr.withdrawn)
        if withdraw_all:
            gone.extend(new)
            new = []
        table.difference_update(gone)
        for key in new:
            if len(table) >= MAX_RECEIVED_TRACKED and key not in table:
                self.received_overflow = True
                break
            table.add(key)


@dataclass(slots=True)
class _UpdateAggregate:
    updates: int = 0
    announced: int = 0
    withdrawn: int = 0
    treated: int = 0
    families: set[tuple[int, int]] = field(default_factory=set)
    problems: list[BGPError] = field(default_factory=list)

    def event(self, conn_id: int) -> UpdateReceived:
        return UpdateReceived(
            conn_id,
            self.updates,
            self.announced,
            self.withdrawn,
            frozenset(self.families),
            self.treated,
            tuple(self.problems),
        )


def _problem_family(err: BGPError) -> tuple[int, int] | None:
    """The (AFI, SAFI) named by a malformed MP_REACH/MP_UNREACH attribute TLV."""
    data = err.data
    if len(data) < 3:
        return None
    offset = 4 if data[0] & FLAG_EXTENDED_LENGTH else 3
    if len(data) < offset + 3:
        return None
    return (int.from_bytes(data[offset : offset + 2], "big"), data[offset + 2])
