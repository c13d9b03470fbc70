"""The Echo function (RFC 5880 §6.4, RFC 5881 §4), single-hop IPv4.

Our echo packets are UDP to port 3785 with source and destination both our own address, sent in a
frame addressed to the peer's MAC. The peer's kernel forwards them straight back (its forwarding
plane, not its BFD process), so each returned packet proves the whole path, TTL now 254. We read
them back from a packet socket with a BPF filter, which needs no `accept_local` on our node; the
peer's echo packets to us are looped the same way by our kernel's forwarding (see docs/bfd.md).

`EchoTracker` is the sans-I/O part (when to send, when the path is lost); `EchoPath` owns the
packet socket and its timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfd.packet import State
from bfd.session import Session

if TYPE_CHECKING:
    from bfd.profile import Profile

ECHO_PORT = 3785
ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
ECHO_MAGIC = 0xBF
_ECHO = struct.Struct("!BBHIIQ")  # magic, version, reserved, discriminator, sequence, sent ns
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")

# Classic BPF on a cooked (SOCK_DGRAM) packet socket: IPv4, UDP, not a fragment, dst port 3785.
_BPF = [
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


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_echo(local: str, discriminator: int, sequence: int, sent_ns: int, ip_id: int) -> bytes:
    """An IPv4/UDP echo packet from `local` to `local`, TTL 255, ready for a cooked socket."""
    addr = ipaddress.IPv4Address(local).packed
    payload = _ECHO.pack(ECHO_MAGIC, 1, 0, discriminator, sequence, sent_ns)
    udp_len = _UDP.size + len(payload)
    pseudo = addr + addr + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp = _UDP.pack(ECHO_PORT, ECHO_PORT, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    header = _IP.pack(0x45, 0xC0, 20 + udp_len, ip_id, 0, 255, socket.IPPROTO_UDP, 0, addr, addr)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


@dataclass(frozen=True, slots=True)
class ReturnedEcho:
    discriminator: int
    sequence: int
    sent_ns: int


def parse_returned_echo(data: bytes, local: str) -> ReturnedEcho | None:
    """Our own echo, forwarded back once by the peer (TTL 254); None for anything else."""
    if len(data) < 20 + _UDP.size + _ECHO.size:
        return None
    vihl, _tos, _total, _id, _frag, ttl, proto, _csum, src, dst = _IP.unpack_from(data)
    if vihl >> 4 != 4 or proto != socket.IPPROTO_UDP or ttl != 254:
        return None
    addr = ipaddress.IPv4Address(local).packed
    if src != addr or dst != addr:
        return None
    offset = (vihl & 0xF) * 4
    _sport, dport, _len, _ucsum = _UDP.unpack_from(data, offset)
    if dport != ECHO_PORT or len(data) < offset + _UDP.size + _ECHO.size:
        return None
    magic, version, _res, discr, seq, sent = _ECHO.unpack_from(data, offset + _UDP.size)
    if magic != ECHO_MAGIC or version != 1:
        return None
    return ReturnedEcho(discr, seq, sent)


@dataclass(slots=True)
class EchoTracker:
    """When to send echoes and when their absence means the path is down (sans-I/O)."""

    interval_us: int
    detect_mult: int
    rng: random.Random = field(default_factory=random.Random)
    active: bool = False
    next_tx: float | None = None
    detect_deadline: float | None = None
    sequence: int = 0

    def tx_interval_us(self, remote_min_echo_rx_us: int) -> int:
        return max(self.interval_us, remote_min_echo_rx_us)

    def activate(self, now: float, remote_min_echo_rx_us: int) -> None:
        if self.active:
            return
        self.active = True
        self.next_tx = now
        # Grace: the first echo has a whole detection time to come back.
        self.detect_deadline = now + self._detection_s(remote_min_echo_rx_us)

    def deactivate(self) -> None:
        self.active = False
        self.next_tx = self.detect_deadline = None

    def _detection_s(self, remote_min_echo_rx_us: int) -> float:
        return self.detect_mult * self.tx_interval_us(remote_min_echo_rx_us) / 1e6

    def due(self, now: float, remote_min_echo_rx_us: int) -> bool:
        """Whether to send an echo now; if so, the next one is scheduled (jittered 75-100 %)."""
        if not self.active or self.next_tx is None or now < self.next_tx:
            return False
        factor = self.rng.uniform(0.75, 1.0)
        self.next_tx = now + self.tx_interval_us(remote_min_echo_rx_us) * factor / 1e6
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        return True

    def returned(self, now: float, remote_min_echo_rx_us: int) -> None:
        if self.active:
            self.detect_deadline = now + self._detection_s(remote_min_echo_rx_us)

    def failed(self, now: float) -> bool:
        return self.active and self.detect_deadline is not None and now >= self.detect_deadline

    def get_timer(self) -> float | None:
        if not self.active:
            return None
        candidates = [t for t in (self.next_tx, self.detect_deadline) if t is not None]
        return min(candidates) if candidates else None


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


def _attach_filter(sock: socket.socket) -> Any:
    program = b"".join(struct.pack("HBBI", *ins) for ins in _BPF)
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(_BPF), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return buf  # the kernel copies the program, but keep it alive until setsockopt returned


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
    _timer: asyncio.TimerHandle | None = None
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

    def close(self) -> None:
        self.tracker.deactivate()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
            _attach_filter(sock)
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
        if self._loop is None:
            return
        deadline = self.tracker.get_timer()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire)

    def _session(self) -> Session:
        session: Session = self._owner.session
        return session

    def _fire(self) -> None:
        assert self._loop is not None
        self._timer = None
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
