"""Events the sans-I/O BGP session (`bgp.fsm.Session`) hands to its driver via `next_event()`.

Each is a frozen dataclass; a driver dispatches on the type.  `Negotiated` describes an
established session: what both OPENs agreed on and the codec contexts to use per direction.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from bgp.capabilities import GracefulRestart
from bgp.context import CodecContext
from bgp.errors import BGPError
from bgp.messages import Notification, Open


@dataclass(frozen=True, slots=True)
class Negotiated:
    """Parameters of an established session (RFC 4271 §4.2, RFC 5492 capabilities)."""

    local_as: int
    peer_as: int
    local_router_id: ipaddress.IPv4Address
    peer_router_id: ipaddress.IPv4Address
    hold_time: int  # 0: no keepalives, no hold timer
    keepalive_time: float  # 0 when hold_time is 0
    four_octet_as: bool
    families: frozenset[tuple[int, int]]  # (AFI, SAFI) both sides advertised
    extended_message: bool
    extended_next_hop: frozenset[tuple[int, int, int]]  # (NLRI AFI, SAFI, next-hop AFI)
    route_refresh: bool
    enhanced_route_refresh: bool
    graceful_restart: bool  # both advertised the GR capability
    local_graceful_restart: GracefulRestart | None
    peer_graceful_restart: GracefulRestart | None
    hard_reset: bool  # RFC 8538: both set the N bit
    rx: CodecContext  # decode what the peer sends
    tx: CodecContext  # encode what we send
    local_open: Open
    peer_open: Open

    @property
    def ibgp(self) -> bool:
        return self.local_as == self.peer_as

    @property
    def max_message_size(self) -> int:
        return self.tx.max_message_size


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """Open a TCP connection to the peer; report `connection_made/failed(conn_id)`."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Send what `data_to_send(conn_id)` still holds, then close (or cancel the connect)."""

    conn_id: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    conn_id: int
    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class SessionDown:
    """A connection that had started the OPEN exchange ended.

    `was_established` tells whether routes were exchanged on it.  `peer_keeps_routes` is
    True when the peer is expected to retain our routes as stale (graceful restart:
    TCP closed without NOTIFICATION, or a non-Hard-Reset NOTIFICATION with RFC 8538).
    """

    conn_id: int
    reason: str
    was_established: bool
    notification_sent: Notification | None = None
    notification_received: Notification | None = None
    peer_keeps_routes: bool = False

    @property
    def code(self) -> int | None:
        n = self.notification_sent or self.notification_received
        return n.code if n else None

    @property
    def subcode(self) -> int | None:
        n = self.notification_sent or self.notification_received
        return n.subcode if n else None


@dataclass(frozen=True, slots=True)
class UpdateReceived:
    """UPDATEs validated and dropped during one `data_received` call (aggregated)."""

    conn_id: int
    updates: int
    announced: int  # prefixes announced (not counting treat-as-withdraw ones)
    withdrawn: int  # prefixes withdrawn, including those treated as withdrawn
    families: frozenset[tuple[int, int]]
    treated_as_withdraw: int = 0  # UPDATEs handled as withdrawals (RFC 7606)
    problems: tuple[BGPError, ...] = field(default=(), compare=False)  # first few


@dataclass(frozen=True, slots=True)
class RouteRefreshRequested:
    """The peer asked for our routes of this family again (RFC 2918)."""

    afi: int
    safi: int


@dataclass(frozen=True, slots=True)
class EndOfRibReceived:
    afi: int
    safi: int


@dataclass(frozen=True, slots=True)
class FamilyDisabled:
    """RFC 7606 AFI/SAFI disable: further routes of this family from the peer are ignored."""

    afi: int
    safi: int
    error: BGPError = field(compare=False)


Event = (
    ConnectRequested
    | CloseConnection
    | SessionEstablished
    | SessionDown
    | UpdateReceived
    | RouteRefreshRequested
    | EndOfRibReceived
    | FamilyDisabled
)
