"""The Echo function's I/O: a packet socket per session, its BPF filter and its timer.

The decisions (when to send, what a returned echo is, when the path is lost) live in `bfd.echo`
and are tested without sockets; this module only finds the peer's MAC, opens and filters the
socket, sends what the tracker says is due and feeds it what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfd.echo import ECHO_PORT, EchoTracker, build_echo, parse_returned_echo
from bfd.packet import State
from bfd.session import Session
from netkit.bpf import Instruction, attach
from netkit.timer import CoreTimer

if TYPE_CHECKING:
    from bfd.profile import Profile

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4

# Classic BPF on a cooked (SOCK_DGRAM) packet socket: IPv4, UDP, not a fragment, dst port 3785.
_BPF: list[Instruction] = [
    (0x30, 0, 0, 9),  # ldb [9]            protocol
    (0x15, 0, 5, 17),  # jeq #17 else drop
    (0x28, 0, 0, 6),  # ldh [6]            flags / fragment offset
    (0x45, 3, 0, 0x1FFF),  # jset #0x1fff -> drop
    (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)   header length
    (0x48, 0, 0, 2),  # ldh [x+2]          UDP destination port
    (0x15, 1, 0, ECHO_PORT),  # jeq #3785 -> accept
    (0x06, 0, 0, 0),  # drop
    (0x06, 0, 0, 0xFFFF),  # accept
]


def neighbour(peer: str, arp_table: Path = Path("/proc/net/arp")) -> tuple[str, str] | None:
    """(interface, MAC) of a resolved IPv4 neighbour, from the kernel's ARP table."""
    try:
        lines = arp_table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        resolved = len(parts) >= 6 and int(parts[2], 16) & 0x2  # ATF_COM
        if resolved and parts[0] == peer and parts[3] != "00:00:00:00:00:00":
            return parts[5], parts[3]
    return None


@dataclass(eq=False)
class EchoPath:
    """The Echo function of one session: a packet socket, a tracker and a timer."""

    local: str
    peer: str
    tracker: EchoTracker
    sock: socket.socket | None = None
    iface: str = ""
    peer_mac: bytes = b""
    _loop: asyncio.AbstractEventLoop | None = None
    _owner: Any = None
    _service: Callable[[Any, float], None] | None = None
    _timer: CoreTimer | None = None
    _ip_id: int = 0
    send_errors: int = 0

    @classmethod
    def open(cls, local: str, peer: str, profile: Profile, floor_ms: int) -> EchoPath:
        if ipaddress.ip_address(local).version != 4:
            raise ValueError("echo mode is supported for IPv4 single-hop sessions only")
        interval_ms = max(profile.echo_interval_ms, floor_ms)
        return cls(local, peer, EchoTracker(interval_ms * 1000, profile.detect_multiplier))

    def update(self, profile: Profile, floor_ms: int) -> None:
        self.tracker.interval_us = max(profile.echo_interval_ms, floor_ms) * 1000
        self.tracker.detect_mult = profile.detect_multiplier

    def attach(
        self, loop: asyncio.AbstractEventLoop, owner: Any, service: Callable[[Any, float], None]
    ) -> None:
        self._loop, self._owner, self._service = loop, owner, service
        self._timer = CoreTimer(loop, self._fire)

    def close(self) -> None:
        self.tracker.deactivate()
        if self._timer is not None:
            self._timer.cancel()
        self._close_socket()

    def _close_socket(self) -> None:
        if self.sock is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
        self.sock = None

    def _open_socket(self) -> bool:
        found = neighbour(self.peer)
        if found is None:
            return False  # the peer's MAC is not resolved yet; control packets will resolve it
        self.iface, mac = found
        self.peer_mac = bytes.fromhex(mac.replace(":", ""))
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        try:
            attach(sock, _BPF)
            sock.bind((self.iface, ETH_P_IP))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._on_readable)
        return True

    def sync(self, session: Session, now: float) -> None:
        """Follow the session: echo runs only while Up and the peer is willing to loop echoes."""
        tracker = self.tracker
        wanted = session.state is State.UP and session.remote_min_echo_rx_us > 0
        if wanted and not tracker.active:
            if self.sock is None:
                try:
                    if not self._open_socket():
                        return
                except OSError:
                    self.send_errors += 1
                    return
            tracker.activate(now, session.remote_min_echo_rx_us)
        elif not wanted and tracker.active:
            tracker.deactivate()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.arm(self.tracker.get_timer())

    def _session(self) -> Session:
        session: Session = self._owner.session
        return session

    def _fire(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        session = self._session()
        if self.tracker.failed(now):
            self._on_readable()  # an echo may be waiting in the socket: read it first
        if self.tracker.failed(now):
            self.tracker.deactivate()
            session.echo_failed(now)
            if self._service is not None:
                self._service(self._owner, now)
            return
        if self.tracker.due(now, session.remote_min_echo_rx_us):
            self._send(session, now)
        self._arm()

    def _send(self, session: Session, now: float) -> None:
        if self.sock is None:
            return
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        packet = build_echo(
            self.local,
            session.local_discriminator,
            self.tracker.sequence,
            int(now * 1e9),
            self._ip_id,
        )
        try:
            self.sock.sendto(packet, (self.iface, ETH_P_IP, 0, 0, self.peer_mac))
        except OSError:
            self.send_errors += 1
            return
        session.counters.echo_packet_output += 1

    def _on_readable(self) -> None:
        if self.sock is None or self._loop is None:
            return
        session = self._session()
        now = self._loop.time()
        while True:
            try:
                data, addr = self.sock.recvfrom(256)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                continue
            echo = parse_returned_echo(data, self.local)
            if echo is None or echo.discriminator != session.local_discriminator:
                continue
            session.counters.echo_packet_input += 1
            self.tracker.returned(now, session.remote_min_echo_rx_us)
        self._arm()
