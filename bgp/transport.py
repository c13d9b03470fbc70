"""The asyncio layer under a BGP session: dialing, listening, and a byte stream with fair reads.

- `dial()` opens an outgoing TCP connection with the session's socket options (TCP MD5, TTL,
  minimum TTL, VRF/interface binding, source address) applied before the SYN leaves.
- `Listener` accepts connections on port 179 (or another) and hands each one to the peer it
  belongs to; a connection from an address that is not a configured peer is reset at once.
  MD5 keys for every configured peer live on the listening sockets, so the kernel checks
  signatures during the handshake.
- `Stream` carries one connection. Reads are fair: received bytes are handed to the session
  in slices of at most `READ_SLICE` octets, one slice per event-loop turn, and the socket is
  paused while a backlog is queued. A router sending its full table therefore never starves
  our keepalive timer (or anything else on the loop). Writes report backpressure through
  `writable` and `on_writable`, so a sender produces UPDATEs only as fast as TCP drains them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from bgp import sockopts

log = logging.getLogger(__name__)

BGP_PORT = 179
READ_SLICE = 32 * 1024  # octets handed to the session per event-loop turn
READ_BACKLOG = 256 * 1024  # pause the socket when this much is queued unprocessed
WRITE_HIGH = 256 * 1024  # transport buffer above which senders wait
WRITE_LOW = 64 * 1024


def normalize_ip(text: str) -> str:
    """Canonical text of an address; IPv4-mapped IPv6 becomes plain IPv4; scope id dropped."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


@dataclass(frozen=True)
class SocketOptions:
    """Per-session socket options; `ttl` None keeps the kernel default."""

    password: str | None = None
    ttl: int | None = None
    min_ttl: int | None = None
    device: str | None = None
    local_address: str | None = None


def apply_options(sock: socket.socket, peer: str, opts: SocketOptions) -> None:
    """Everything but the source bind (done before connect only)."""
    if opts.password:
        sockopts.set_md5(sock, peer, opts.password)
    if opts.ttl is not None:
        sockopts.set_ttl(sock, opts.ttl)
    if opts.min_ttl:
        sockopts.set_min_ttl(sock, opts.min_ttl)
    if opts.device:
        sockopts.bind_to_device(sock, opts.device)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def sockaddr(host: str, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    """The socket address of `host`: a scoped IPv6 address (`fe80::1%eth0`) gets its scope id.

    Python's 2-tuple form drops the `%eth0` zone, and a link-local address without one cannot
    be used, so unnumbered peers need the 4-tuple.
    """
    if "%" not in host:
        return (host, port)
    addr, _, zone = host.partition("%")
    index = int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
    return (addr, port, 0, index)


async def dial(
    peer: str, port: int, opts: SocketOptions, connect_timeout: float = 10.0
) -> socket.socket:
    """A connected non-blocking socket to `peer`:`port`, or OSError / TimeoutError."""
    family = sockopts.family_of(peer)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        apply_options(sock, peer, opts)
        sockopts.bind_source(sock, opts.local_address)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout):
            await loop.sock_connect(sock, sockaddr(peer, port))
    except BaseException:
        sock.close()
        raise
    return sock


def reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the refusal a peer sees at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


AcceptCallback = Callable[[socket.socket, str], None]


class Listener:
    """Accepts BGP connections from configured peers only (see the module docstring)."""

    def __init__(
        self,
        on_accept: AcceptCallback,
        port: int = BGP_PORT,
        addresses: tuple[str, ...] = ("0.0.0.0", "::"),
        device: str | None = None,
    ) -> None:
        self.on_accept = on_accept
        self.port = port
        self.addresses = addresses
        self.device = device  # VRF (SO_BINDTODEVICE): accept only through it
        self.refused = 0
        self.accepted = 0
        self._socks: list[socket.socket] = []
        self._peers: dict[str, str | None] = {}  # address -> MD5 password

    @property
    def bound_port(self) -> int:
        return int(self._socks[0].getsockname()[1]) if self._socks else self.port

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        port = self.port
        for addr in self.addresses:
            family = sockopts.family_of(addr)
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if self.device:
                    sockopts.bind_to_device(sock, self.device)
                sock.bind((addr, port))
                sock.listen(64)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                if family == socket.AF_INET6 and exc.errno == 99 and len(self.addresses) > 1:
                    continue  # no IPv6 on this host: listen on IPv4 only
                self.close()
                raise OSError(exc.errno, f"listen on [{addr}]:{port}: {exc.strerror}") from exc
            port = port or sock.getsockname()[1]  # port 0: same kernel-chosen port for both
            self._socks.append(sock)
            loop.add_reader(sock.fileno(), self._accept, sock)
        for peer, password in self._peers.items():
            self._install_key(peer, password)

    def _install_key(self, peer: str, password: str | None) -> None:
        for sock in self._socks:
            if sock.family == sockopts.family_of(peer) and password is not None:
                sockopts.set_md5(sock, peer, password)

    def allow(self, peer: str, password: str | None = None) -> None:
        """Accept connections from `peer` (with its MD5 key, if any)."""
        peer = normalize_ip(peer)
        old = self._peers.get(peer)
        if old and not password:
            for sock in self._socks:
                if sock.family == sockopts.family_of(peer):
                    sockopts.set_md5(sock, peer, None)
        self._peers[peer] = password or None
        self._install_key(peer, password or None)

    def disallow(self, peer: str) -> None:
        peer = normalize_ip(peer)
        if self._peers.pop(peer, None):
            for sock in self._socks:
                if sock.family == sockopts.family_of(peer):
                    sockopts.set_md5(sock, peer, None)

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(16):
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("acceptFailed", extra={"error": str(exc)})
                return
            peer = normalize_ip(addr[0])
            if peer not in self._peers:
                self.refused += 1
                log.info(
                    "connectionRefused", extra={"peer": peer, "reason": "not a configured peer"}
                )
                reset(sock)
                continue
            self.accepted += 1
            sock.setblocking(False)
            self.on_accept(sock, peer)

    def close(self) -> None:
        loop = asyncio.get_event_loop()
        for sock in self._socks:
            with contextlib.suppress(Exception):
                loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()


class StreamOwner:
    """What a `Stream` reports to (the session driver)."""

    def on_data(self, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def on_writable(self) -> None:  # pragma: no cover - interface
        pass

    def on_closed(self, exc: Exception | None) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Stream(asyncio.Protocol):
    """One TCP connection with fair reads and write backpressure (see the module docstring)."""

    def __init__(self, owner: StreamOwner) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self._inbox: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._scheduled = False
        self._reading_paused = False
        self._writable = True
        self._closed = False
        self._early: list[bytes] = []  # written before the transport exists
        self._close_when_ready = False
        self._lost = asyncio.get_running_loop().create_future()
        self.bytes_received = 0
        self.bytes_sent = 0

    @classmethod
    async def wrap(cls, sock: socket.socket, owner: StreamOwner) -> Stream:
        stream = cls(owner)
        await stream.attach(sock)
        return stream

    async def attach(self, sock: socket.socket) -> None:
        """Start carrying `sock`; writes made before this are sent first."""
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: self, sock=sock)

    async def wait_closed(self) -> None:
        """Until the connection is gone (after close(): once queued bytes are flushed)."""
        await asyncio.shield(self._lost)

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        for data in self._early:
            transport.write(data)
        self._early.clear()
        if self._close_when_ready:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self._inbox.append(data)
        self._queued += len(data)
        if self._queued > READ_BACKLOG and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        if self._closed or not self._inbox:
            return
        chunk = self._inbox.popleft()
        if len(chunk) > READ_SLICE:
            self._inbox.appendleft(chunk[READ_SLICE:])
            chunk = chunk[:READ_SLICE]
        self._queued -= len(chunk)
        self.owner.on_data(chunk)
        if self._closed:
            return
        if self._inbox:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)
        if self._reading_paused and self._queued <= READ_BACKLOG // 2 and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        self.owner.on_closed(exc)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        if not self._closed:
            self.owner.on_writable()

    # -- ours ----------------------------------------------------------------------------
    @property
    def writable(self) -> bool:
        return self._writable and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self.bytes_sent += len(data)
        if self.transport is None:
            self._early.append(data)
        else:
            self.transport.write(data)

    def local_address(self) -> str:
        sock = self.transport.get_extra_info("sockname") if self.transport else None
        return normalize_ip(sock[0]) if sock else ""

    def close(self) -> None:
        """Flush what is queued, then FIN; no more callbacks after this."""
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        if self.transport is not None:
            self.transport.close()
        else:
            self._close_when_ready = True

    def abort(self) -> None:
        """Drop the connection now (RST); queued data is discarded."""
        self._closed = True
        self._inbox.clear()
        self._early.clear()
        if self.transport is not None:
            self.transport.abort()
        elif not self._lost.done():
            self._lost.set_result(None)
