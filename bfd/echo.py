"""The Echo function (RFC 5880 §6.4, RFC 5881 §4), single-hop IPv4.

Our echo packets are UDP to port 3785 with source and destination both our own address, sent in a
frame addressed to the peer's MAC. The peer's kernel forwards them straight back (its forwarding
plane, not its BFD process), so each returned packet proves the whole path, TTL now 254. We read
them back from a packet socket with a BPF filter, which needs no `accept_local` on our node; the
peer's echo packets to us are looped the same way by our kernel's forwarding (see docs/bfd.md).

This module is the sans-I/O part: the packets (`build_echo`, `parse_returned_echo`) and
`EchoTracker` (when to send, when the path is lost), tested with a fake clock and plain bytes.
`bfd.echo_path.EchoPath` owns the packet socket and the timer.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from dataclasses import dataclass, field

from netkit.checksum import internet_checksum

ECHO_PORT = 3785
ECHO_MAGIC = 0xBF
_ECHO = struct.Struct("!BBHIIQ")  # magic, version, reserved, discriminator, sequence, sent ns
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")


def build_echo(local: str, discriminator: int, sequence: int, sent_ns: int, ip_id: int) -> bytes:
    """An IPv4/UDP echo packet from `local` to `local`, TTL 255, ready for a cooked socket."""
    addr = ipaddress.IPv4Address(local).packed
    payload = _ECHO.pack(ECHO_MAGIC, 1, 0, discriminator, sequence, sent_ns)
    udp_len = _UDP.size + len(payload)
    pseudo = addr + addr + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp = _UDP.pack(ECHO_PORT, ECHO_PORT, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", internet_checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    header = _IP.pack(0x45, 0xC0, 20 + udp_len, ip_id, 0, 255, socket.IPPROTO_UDP, 0, addr, addr)
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
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
