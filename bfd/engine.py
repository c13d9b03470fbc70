"""The asyncio layer: sockets and the clock for many BFD sessions (RFC 5881 / RFC 5883).

The protocol lives in `bfd.session` (sans-I/O). This module only owns the sockets, the monotonic
clock (the event loop's) and one timer per session, and reports state changes to listeners.

- Receive: one socket per (local address, port): UDP 3784 single hop, 4784 multihop. The received
  TTL / hop limit comes from IP_RECVTTL / IPV6_RECVHOPLIMIT; single hop requires 255 (GTSM),
  multihop requires at least the profile's minimumTtl.
- Send: one socket per session, bound to a source port from 49152-65535 unique to the session,
  TTL / hop limit 255, DSCP CS6.
- Link-local IPv6 (unnumbered BGP peers): addresses carry their interface as a zone,
  `fe80::1%eth0`, in the session key and in the sockets' addresses (scope id); received packets
  from a link-local source are matched with the zone of the interface they came in on.
- Timing: before a detection deadline is acted on, every receive socket is drained, so a packet
  that arrived in time is never lost to a late timer; timer lateness is measured on every expiry
  (`Engine.lateness`), and the interval floor (`floor_ms`) keeps what we advertise honourable.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bfd.dispatch import Binding, Dispatcher, SessionKey
from bfd.echo_path import EchoPath
from bfd.events import Event, PollCompleted, StateChanged
from bfd.packet import State
from bfd.profile import DEFAULT_FLOOR_MS, Profile
from bfd.session import Session, SessionCounters

log = logging.getLogger("bfd")

PORT_SINGLE_HOP = 3784
PORT_MULTIHOP = 4784
SOURCE_PORTS = (49152, 65535)
TTL_MAX = 255
DSCP_CS6 = 0xC0
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux value; absent from Python's socket module
_CMSG_SPACE = socket.CMSG_SPACE(4)

Listener = Callable[["ManagedSession", Event], None]


@dataclass(slots=True)
class LatenessStats:
    """How late timers fired compared with their deadline: the scheduling watchdog."""

    samples: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    over_10ms: int = 0
    over_50ms: int = 0

    def record(self, late: float) -> None:
        if late < 0:
            late = 0.0
        self.samples += 1
        self.total_s += late
        if late > self.max_s:
            self.max_s = late
        if late > 0.010:
            self.over_10ms += 1
            if late > 0.050:
                self.over_50ms += 1

    def as_dict(self) -> dict[str, float | int]:
        mean = self.total_s / self.samples if self.samples else 0.0
        return {
            "samples": self.samples,
            "mean_ms": round(mean * 1000, 3),
            "max_ms": round(self.max_s * 1000, 3),
            "over_10ms": self.over_10ms,
            "over_50ms": self.over_50ms,
        }


@dataclass(eq=False, slots=True)
class ManagedSession:
    """A session as the engine runs it: the state machine plus its socket and timer."""

    key: SessionKey
    profile: Profile
    session: Session
    tx_sock: socket.socket
    peer_addr: tuple[Any, ...]
    source_port: int
    floored: list[str] = field(default_factory=list)
    echo: EchoPath | None = None
    timer: asyncio.TimerHandle | None = None
    deadline: float | None = None
    send_errors: int = 0

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def counters(self) -> SessionCounters:
        return self.session.counters

    def metrics(self) -> dict[str, int]:
        """MetalLB's metallb_bfd_* values for this peer (plain data; no Prometheus here)."""
        c = self.session.counters
        return {
            "session_up": int(self.session.state is State.UP),
            "control_packet_input": c.control_packet_input,
            "control_packet_output": c.control_packet_output,
            "echo_packet_input": c.echo_packet_input,
            "echo_packet_output": c.echo_packet_output,
            "session_up_events": c.session_up_events,
            "session_down_events": c.session_down_events,
        }


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _sockaddr(address: str, port: int) -> tuple[Any, ...]:
    """Python's (host, port) drops a `%eth0` zone: link-local addresses need the scope id."""
    if "%" not in address:
        return (address, port, 0, 0) if ":" in address else (address, port)
    host, _, zone = address.partition("%")
    index = int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
    return (host, port, 0, index)


def _peer_text(addr: tuple[Any, ...]) -> str:
    """The sender as session keys name it: zone kept for link-local sources, else dropped."""
    host = str(addr[0]).split("%", 1)[0]
    if len(addr) >= 4 and addr[3] and host.startswith("fe80:"):
        try:
            return f"{host}%{socket.if_indextoname(addr[3])}"
        except OSError:
            return host
    return host


class Engine:
    """Runs BFD sessions on the running event loop; add, change and remove them at any time."""

    def __init__(
        self, *, floor_ms: int = DEFAULT_FLOOR_MS, rng: random.Random | None = None
    ) -> None:
        self.floor_ms = floor_ms
        self.rng = rng or random.SystemRandom()
        self.dispatcher: Dispatcher[ManagedSession] = Dispatcher()
        self.lateness = LatenessStats()
        self.sessions: dict[SessionKey, ManagedSession] = {}
        self._listeners: list[Listener] = []
        self._rx: dict[tuple[str, int], socket.socket] = {}
        self._used_ports: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, watchdog_interval: float = 0.02) -> None:
        self._loop = asyncio.get_running_loop()
        self._watchdog = asyncio.create_task(self._watch(watchdog_interval))

    async def close(self, *, admin_down: bool = True) -> None:
        """Tell every peer we are going (AdminDown, diag 7), then release every socket."""
        for key in list(self.sessions):
            self.remove(key, admin_down=admin_down)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for (_local, _port), sock in list(self._rx.items()):
            self._close_rx(sock)
        self._rx.clear()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("Engine.start() has not been awaited")
        return self._loop

    # -- sessions -----------------------------------------------------------------------------
    def add(self, key: SessionKey, profile: Profile | None = None) -> ManagedSession:
        """Create a session and start it (an active one sends at once, a passive one listens)."""
        if key in self.sessions:
            raise ValueError(f"BFD session to {key.peer} from {key.local} already exists")
        profile = profile or Profile()
        if _family(key.peer) != _family(key.local):
            raise ValueError(f"peer {key.peer} and local {key.local} are not the same family")
        self._check_echo(key, profile)
        params, floored = profile.session_params(self.floor_ms)
        port = PORT_MULTIHOP if key.multihop else PORT_SINGLE_HOP
        had_rx = (key.local, port) in self._rx
        self._ensure_rx(key.local, port, key.multihop)
        try:
            tx_sock, source_port = self._open_tx(key.local)
        except OSError:
            if not had_rx and (sock := self._rx.pop((key.local, port), None)):
                self._close_rx(sock)
            raise
        discriminator = self._new_discriminator()
        session = Session(discriminator, params, rng=random.Random(self.rng.getrandbits(64)))
        peer_addr = _sockaddr(key.peer, port)
        ms = ManagedSession(key, profile, session, tx_sock, peer_addr, source_port, floored)
        self.sessions[key] = ms
        self.dispatcher.add(Binding(key, session, profile.minimum_ttl, ms))
        self._log_floor(ms)
        if profile.echo_mode:
            ms.echo = EchoPath.open(key.local, key.peer, profile, self.floor_ms)
            ms.echo.attach(self.loop, ms, self._service)
        session.start(self.loop.time())
        self._service(ms, self.loop.time())
        return ms

    def update(self, key: SessionKey, profile: Profile) -> None:
        """New profile for a running session: timers change by Poll Sequence, without a flap."""
        ms = self.sessions[key]
        self._check_echo(key, profile)
        if profile.echo_mode != ms.profile.echo_mode:
            # Echo needs a raw socket set up (or torn down); restart only that part.
            if ms.echo is not None:
                ms.echo.close()
                ms.echo = None
            if profile.echo_mode:
                ms.echo = EchoPath.open(key.local, key.peer, profile, self.floor_ms)
                ms.echo.attach(self.loop, ms, self._service)
        elif ms.echo is not None:
            ms.echo.update(profile, self.floor_ms)
        ms.profile = profile
        params, ms.floored = profile.session_params(self.floor_ms)
        self._log_floor(ms)
        self.dispatcher.by_key[key].min_ttl = profile.minimum_ttl
        ms.session.set_params(params, self.loop.time())
        self._service(ms, self.loop.time())

    @staticmethod
    def _check_echo(key: SessionKey, profile: Profile) -> None:
        if profile.echo_mode and key.multihop:
            raise ValueError("echo mode is not possible on a multihop session")
        if profile.echo_mode and _family(key.local) == socket.AF_INET6:
            raise ValueError("echo mode is supported for IPv4 sessions only")

    def remove(self, key: SessionKey, *, admin_down: bool = True) -> None:
        ms = self.sessions.pop(key, None)
        if ms is None:
            return
        if admin_down and ms.session.state is not State.ADMIN_DOWN:
            ms.session.admin_down(self.loop.time())
            self._service(ms, self.loop.time())
        self.dispatcher.remove(key)
        if ms.timer is not None:
            ms.timer.cancel()
        if ms.echo is not None:
            ms.echo.close()
        ms.tx_sock.close()
        self._used_ports.discard(ms.source_port)
        port = PORT_MULTIHOP if key.multihop else PORT_SINGLE_HOP
        if not any(k.local == key.local and k.multihop == key.multihop for k in self.sessions) and (
            sock := self._rx.pop((key.local, port), None)
        ):
            self._close_rx(sock)

    def admin_down(self, key: SessionKey) -> None:
        ms = self.sessions[key]
        ms.session.admin_down(self.loop.time())
        self._service(ms, self.loop.time())

    def admin_up(self, key: SessionKey) -> None:
        ms = self.sessions[key]
        ms.session.admin_up(self.loop.time())
        self._service(ms, self.loop.time())

    def metrics(self) -> dict[str, dict[str, int]]:
        """Per-peer counters for MetalLB's metallb_bfd_* metrics, keyed by peer address."""
        return {ms.key.peer: ms.metrics() for ms in self.sessions.values()}

    # -- sockets ------------------------------------------------------------------------------
    def _ensure_rx(self, local: str, port: int, multihop: bool) -> None:
        if (local, port) in self._rx:
            return
        family = _family(local)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            sock.bind(_sockaddr(local, port))
        except OSError:
            sock.close()
            raise
        self._rx[(local, port)] = sock
        self.loop.add_reader(sock.fileno(), self._on_readable, sock, local, multihop)

    def _close_rx(self, sock: socket.socket) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(sock.fileno())
        sock.close()

    def _open_tx(self, local: str) -> tuple[socket.socket, int]:
        family = _family(local)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL_MAX)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, DSCP_CS6)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL_MAX)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_CS6)
            low, high = SOURCE_PORTS
            candidates = [self.rng.randint(low, high) for _ in range(32)]
            candidates += list(range(low, high + 1))
            for port in candidates:
                if port in self._used_ports:
                    continue
                try:
                    sock.bind(_sockaddr(local, port))
                except OSError as exc:
                    if exc.errno == 98:  # EADDRINUSE: another process has it; try the next one
                        continue
                    raise
                self._used_ports.add(port)
                return sock, port
            raise OSError(f"no free source port in {low}-{high} on {local}")
        except OSError:
            sock.close()
            raise

    def _on_readable(self, sock: socket.socket, local: str, multihop: bool) -> None:
        now = self.loop.time()
        dispatch = self.dispatcher.datagram_received
        while True:
            try:
                data, ancdata, _flags, addr = sock.recvmsg(512, _CMSG_SPACE)
            except BlockingIOError:
                return
            except OSError:
                self.dispatcher.drops["socket_error"] += 1
                return
            ttl = None
            for level, kind, cdata in ancdata:
                if (level == socket.IPPROTO_IP and kind == socket.IP_TTL) or (
                    level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT
                ):
                    ttl = int.from_bytes(cdata[:4], sys.byteorder)
            peer = _peer_text(addr)
            binding = dispatch(data, local, peer, multihop, ttl, now)
            if binding is not None:
                self._service(binding.owner, now)

    def _drain(self) -> None:
        for (local, port), sock in list(self._rx.items()):
            self._on_readable(sock, local, port == PORT_MULTIHOP)

    # -- timers and outputs -------------------------------------------------------------------
    def _service(self, ms: ManagedSession, now: float) -> None:
        """Send what the session produced, report its events, and re-arm its timer."""
        session = ms.session
        for wire in session.datagrams_to_send():  # an unchanged packet is the same bytes object
            try:
                ms.tx_sock.sendto(wire, ms.peer_addr)
            except OSError:
                ms.send_errors += 1
        while (event := session.next_event()) is not None:
            self._emit(ms, event)
        if ms.echo is not None:
            ms.echo.sync(session, now)
        deadline = session.get_timer()
        if deadline != ms.deadline or ms.timer is None:
            if ms.timer is not None:
                ms.timer.cancel()
            ms.deadline = deadline
            ms.timer = None if deadline is None else self.loop.call_at(deadline, self._fire, ms)

    def _fire(self, ms: ManagedSession) -> None:
        now = self.loop.time()
        if ms.deadline is not None:
            self.lateness.record(now - ms.deadline)
        ms.timer = None
        detect = ms.session.detect_deadline
        if detect is not None and detect <= now:
            # A packet may be waiting in a socket while we were late: read it before judging.
            self._drain()
            if ms.key not in self.sessions:
                return
        ms.session.handle_timer(now)
        self._service(ms, now)

    async def _watch(self, interval: float) -> None:
        loop = self.loop
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            self.lateness.record(loop.time() - expected)

    def _emit(self, ms: ManagedSession, event: Event) -> None:
        if isinstance(event, StateChanged):
            log.info(
                "bfdStateChange",
                extra={
                    "peer": ms.key.peer,
                    "local": ms.key.local,
                    "multihop": ms.key.multihop,
                    "state": event.new.label,
                    "previousState": event.old.label,
                    "diag": event.diag.name.lower(),
                    "remoteState": event.remote_state.label,
                    "remoteDiag": event.remote_diag.name.lower(),
                },
            )
        elif isinstance(event, PollCompleted):
            log.debug(
                "bfdTimersApplied",
                extra={
                    "peer": ms.key.peer,
                    "txIntervalMs": ms.session.tx_interval_us / 1000,
                    "detectionTimeMs": ms.session.detection_time_us / 1000,
                },
            )
        for listener in self._listeners:
            try:
                listener(ms, event)
            except Exception:  # a broken listener must not stop BFD
                log.exception("bfdListenerFailed", extra={"peer": ms.key.peer})

    def _log_floor(self, ms: ManagedSession) -> None:
        if ms.floored:
            log.warning(
                "bfdIntervalFloorApplied",
                extra={
                    "peer": ms.key.peer,
                    "profile": ms.profile.name,
                    "fields": ms.floored,
                    "floorMs": self.floor_ms,
                },
            )

    def _new_discriminator(self) -> int:
        while True:
            value = self.rng.getrandbits(32)
            if value and value not in self.dispatcher.by_discriminator:
                return value
