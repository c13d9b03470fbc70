"""The asyncio layer under a BGP session: dialing, listening, and a byte stream with fair reads.

- `dial()` opens an outgoing TCP connection with the session's socket options (TCP MD5, TTL,
  minimum TTL, VRF/interface binding, source address) applied before the SYN leaves.
- `Listener` accepts connections on port 179 (or another) and hands each one to the peer it
  belongs to; a connection from an address that is not a configured peer is reset at once.
  MD5 keys for every configured peer live on the listening sockets, so the kernel checks
  signatures during the handshake. It is built to survive a flood: at most
  `MAX_CONN_PER_ADDRESS` live connections per remote address and `MAX_CONN_TOTAL` in all
  (more are reset); when accept() itself fails (out of file descriptors, memory), the
  listening socket is left alone for an exponentially growing pause (`ACCEPT_BACKOFF_FIRST`
  up to `ACCEPT_BACKOFF_MAX`) instead of spinning on a socket that stays readable; and
  refusals and failures are logged at most once per `LOG_INTERVAL` with a count. The session
  closes an accepted connection that sends no OPEN within `bgp.fsm.ACCEPT_OPEN_WAIT`.
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
import errno
import ipaddress
import logging
import resource
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bgp import sockopts

log = logging.getLogger("bgp")

BGP_PORT = 179
READ_SLICE = 32 * 1024  # octets handed to the session per event-loop turn
READ_BACKLOG = 256 * 1024  # pause the socket when this much is queued unprocessed
WRITE_HIGH = 256 * 1024  # transport buffer above which senders wait
WRITE_LOW = 64 * 1024
# Listener limits (docs/security.md). A BGP peer needs one incoming connection, two during a
# collision or while a restarted peer replaces a dead session: four leaves room for that.
MAX_CONN_PER_ADDRESS = 4
MAX_CONN_TOTAL = 1024  # and never more than half the process's RLIMIT_NOFILE
ACCEPT_BACKOFF_FIRST = 0.1  # seconds; doubles on each failed accept()
ACCEPT_BACKOFF_MAX = 2.0  # so a freed descriptor is used at most this late
LOG_INTERVAL = 30.0  # seconds between two log lines about the same kind of refusal
ACCEPT_BATCH = 16  # connections accepted per event-loop turn


def normalize_ip(text: str) -> str:
    """Canonical text of an address; IPv4-mapped IPv6 becomes plain IPv4; scope id dropped."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


@dataclass(frozen=True)
class SocketOptions:
    """Per-session socket options; `ttl` None keeps the kernel default."""

    password: str | None = field(default=None, repr=False)  # never in a log line or repr
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


def total_limit(configured: int = MAX_CONN_TOTAL) -> int:
    """`configured`, but at most half the soft RLIMIT_NOFILE: the rest stays for dialing,
    the API and logging even when every accepted slot is taken."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft // 2))


class RateLimitedLog:
    """One log line per `interval` for a recurring condition, carrying how often it happened.

    The first occurrence is logged at once; later ones within the interval are only counted,
    and the count goes out with the next line. A flood thus costs a bounded number of lines.
    """

    def __init__(self, message: str, level: int = logging.WARNING, interval: float = LOG_INTERVAL):
        self.message = message
        self.level = level
        self.interval = interval
        self.suppressed = 0
        self.total = 0
        self._last = float("-inf")

    def __call__(self, **extra: object) -> None:
        self.total += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            self.suppressed += 1
            return
        self._last = now
        log.log(self.level, self.message, extra={**extra, "count": self.suppressed + 1})
        self.suppressed = 0


# accept() errors that concern one aborted connection, not the listener: just go on.
_TRANSIENT_ACCEPT_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class Listener:
    """Accepts BGP connections from configured peers only (see the module docstring)."""

    def __init__(
        self,
        on_accept: AcceptCallback,
        port: int = BGP_PORT,
        addresses: tuple[str, ...] = ("0.0.0.0", "::"),
        device: str | None = None,
        *,
        max_per_address: int = MAX_CONN_PER_ADDRESS,
        max_total: int | None = None,
    ) -> None:
        self.on_accept = on_accept
        self.port = port
        self.addresses = addresses
        self.device = device  # VRF (SO_BINDTODEVICE): accept only through it
        self.max_per_address = max_per_address
        self.max_total = total_limit() if max_total is None else max_total
        self.refused = 0  # not a configured peer
        self.limited = 0  # over the per-address or total limit
        self.accepted = 0
        self.accept_errors = 0
        self._socks: list[socket.socket] = []
        self._peers: dict[str, str | None] = {}  # address -> MD5 password
        self._live: dict[str, list[socket.socket]] = {}  # address -> accepted, maybe closed
        self._backoff = 0.0  # current pause after a failed accept(); 0: none
        self._paused: dict[int, asyncio.TimerHandle] = {}  # fd -> resume timer
        self._log_refused = RateLimitedLog("connectionRefused", logging.INFO)
        self._log_limited = RateLimitedLog("connectionLimited")
        self._log_failed = RateLimitedLog("acceptFailed")

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

    def live_connections(self, peer: str | None = None) -> int:
        """Accepted connections not closed yet (from `peer`, or in all)."""
        if peer is not None:
            return len(self._prune(normalize_ip(peer)))
        return sum(len(self._prune(p)) for p in list(self._live))

    def _prune(self, peer: str) -> list[socket.socket]:
        live = [s for s in self._live.get(peer, ()) if s.fileno() != -1]
        if live:
            self._live[peer] = live
        else:
            self._live.pop(peer, None)
        return live

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _TRANSIENT_ACCEPT_ERRORS:
                    continue
                self._accept_failed(lsock, exc)
                return
            self._admit(sock, normalize_ip(addr[0]))
        if self._backoff:
            log.info(
                "acceptRecovered",
                extra={"failures": self._log_failed.total, "port": self.bound_port},
            )
            self._backoff = 0.0
            self._log_failed = RateLimitedLog("acceptFailed")

    def _accept_failed(self, lsock: socket.socket, exc: OSError) -> None:
        """Out of descriptors or memory: the pending connection stays queued and the socket
        stays readable, so stop watching it for a while rather than spin."""
        self.accept_errors += 1
        self._backoff = min(
            ACCEPT_BACKOFF_MAX, self._backoff * 2 if self._backoff else ACCEPT_BACKOFF_FIRST
        )
        self._log_failed(error=str(exc), port=self.bound_port, retryIn=self._backoff)
        fd = lsock.fileno()
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        self._paused[fd] = loop.call_later(self._backoff, self._resume, lsock)

    def _resume(self, lsock: socket.socket) -> None:
        fd = lsock.fileno()
        self._paused.pop(fd, None)
        if fd != -1 and lsock in self._socks:
            asyncio.get_running_loop().add_reader(fd, self._accept, lsock)
            self._accept(lsock)  # level-triggered anyway; do not wait a turn

    def _admit(self, sock: socket.socket, peer: str) -> None:
        if peer not in self._peers:
            self.refused += 1
            self._log_refused(peer=peer, reason="not a configured peer")
            reset(sock)
            return
        live = self._prune(peer)
        reason = None
        if len(live) >= self.max_per_address:
            reason = f"more than {self.max_per_address} connections from this address"
        elif self.live_connections() >= self.max_total:
            reason = f"more than {self.max_total} accepted connections in all"
        if reason is not None:
            self.limited += 1
            self._log_limited(peer=peer, reason=reason)
            reset(sock)
            return
        self._live.setdefault(peer, []).append(sock)
        self.accepted += 1
        sock.setblocking(False)
        self.on_accept(sock, peer)

    def close(self) -> None:
        loop = asyncio.get_event_loop()
        for handle in self._paused.values():
            handle.cancel()
        self._paused.clear()
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
