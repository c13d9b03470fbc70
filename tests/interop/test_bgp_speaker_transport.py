"""The asyncio transport over loopback: peer filtering, fair reads, backpressure, options."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bgp import sockopts
from bgp.transport import (
    READ_SLICE,
    Listener,
    SocketOptions,
    Stream,
    StreamOwner,
    dial,
    normalize_ip,
)


class Recorder(StreamOwner):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.writable_events = 0

    def on_data(self, data: bytes) -> None:
        self.chunks.append(data)

    def on_writable(self) -> None:
        self.writable_events += 1

    def on_closed(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


async def _listener(
    allowed: list[str],
) -> tuple[Listener, asyncio.Queue[tuple[socket.socket, str]]]:
    q: asyncio.Queue[tuple[socket.socket, str]] = asyncio.Queue()
    lst = Listener(lambda s, p: q.put_nowait((s, p)), port=0, addresses=("127.0.0.1",))
    for a in allowed:
        lst.allow(a)
    lst.start()
    return lst, q


def test_normalize_ip() -> None:
    assert normalize_ip("::ffff:198.51.100.1") == "198.51.100.1"
    assert normalize_ip("fe80::1%eth0") == "fe80::1"
    assert normalize_ip("2001:DB8::1") == "2001:db8::1"


async def test_listener_hands_configured_peer_over_and_resets_others() -> None:
    lst, q = await _listener(["127.0.0.1"])
    try:
        sock = await dial("127.0.0.1", lst.bound_port, SocketOptions(local_address="127.0.0.1"))
        accepted, peer = await asyncio.wait_for(q.get(), 5)
        assert peer == "127.0.0.1"
        accepted.close()
        sock.close()

        loop = asyncio.get_running_loop()

        async def stranger() -> bytes:
            s = await dial("127.0.0.1", lst.bound_port, SocketOptions(local_address="127.0.0.2"))
            try:
                return await asyncio.wait_for(loop.sock_recv(s, 10), 5)
            finally:
                s.close()

        # Reset during or right after the handshake, depending on timing; never served.
        try:
            assert await stranger() == b""
        except ConnectionResetError:
            pass
        await asyncio.sleep(0.05)
        assert q.empty() and lst.refused == 1 and lst.accepted == 1
    finally:
        lst.close()


HANDSHAKE_WAIT = 0.5  # s; loopback answers in microseconds, a dropped SYN is retried after 1 s


async def _handshake(port: int, src: str, key: str | None) -> bool:
    """Does a TCP handshake from `src` to 127.0.0.1 complete? A listening socket holding an MD5
    key for `src` drops every SYN without that key's signature (RFC 2385): the connect times
    out. A peer the listener does not serve completes it and is reset right after."""
    loop = asyncio.get_running_loop()
    with socket.socket() as s:
        s.setblocking(False)
        s.bind((src, 0))
        if key is not None:
            sockopts.set_md5(s, "127.0.0.1", key)
        try:
            await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", port)), HANDSHAKE_WAIT)
        except TimeoutError:
            return False
        except ConnectionResetError:
            pass  # completed, then refused
        return True


async def test_listener_installs_md5_keys_on_listening_sockets() -> None:
    q: asyncio.Queue[tuple[socket.socket, str]] = asyncio.Queue()
    lst = Listener(lambda s, p: q.put_nowait((s, p)), port=0, addresses=("127.0.0.1",))
    lst.allow("127.0.0.2", "secret")
    lst.start()  # keys of peers allowed before the start are installed by it
    lst.allow("127.0.0.3", "other")  # and later ones on the listening socket at once

    async def served(src: str, key: str | None) -> bool:
        if not await _handshake(lst.bound_port, src, key):
            return False
        accepted, peer = await asyncio.wait_for(q.get(), 5)
        accepted.close()
        return peer == src

    try:
        assert not await _handshake(lst.bound_port, "127.0.0.2", None)
        assert not await _handshake(lst.bound_port, "127.0.0.2", "wrong")
        assert await served("127.0.0.2", "secret")
        assert not await _handshake(lst.bound_port, "127.0.0.3", None)
        assert await served("127.0.0.3", "other")
        lst.allow("127.0.0.2", None)  # the key is removed: plain TCP from that peer again
        assert await served("127.0.0.2", None)
        lst.disallow("127.0.0.3")  # its key goes with it: the handshake completes, then refused
        assert await _handshake(lst.bound_port, "127.0.0.3", None)
        for _ in range(100):
            if lst.refused:
                break
            await asyncio.sleep(0.01)
        assert lst.refused == 1 and q.empty()
    finally:
        lst.close()


async def test_dial_applies_options() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        sock = await dial(
            "127.0.0.1",
            server.getsockname()[1],
            SocketOptions(ttl=1, min_ttl=1, device="lo", local_address="127.0.0.1"),
        )
        assert sockopts.get_ttl(sock) == 1
        assert sockopts.bound_device(sock) == "lo"
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        sock.close()
    finally:
        server.close()


async def test_dial_refused() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError):
        await dial("127.0.0.1", port, SocketOptions())


async def _pair() -> tuple[Stream, Recorder, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    rec = Recorder()
    stream = await Stream.wrap(a, rec)
    return stream, rec, b


async def test_reads_are_sliced_and_timers_run_between_slices() -> None:
    stream, rec, other = await _pair()
    loop = asyncio.get_running_loop()
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(len(rec.chunks))
        if len(ticks) < 200:
            loop.call_soon(tick)

    payload = bytes(range(256)) * 4096  # 1 MiB
    await loop.sock_sendall(other, payload)
    loop.call_soon(tick)
    for _ in range(1000):
        if sum(map(len, rec.chunks)) >= len(payload):
            break
        await asyncio.sleep(0.005)
    assert b"".join(rec.chunks) == payload
    assert max(map(len, rec.chunks)) <= READ_SLICE
    # Other callbacks ran while the backlog was worked through, not only after it.
    assert any(0 < t < len(rec.chunks) for t in ticks)
    stream.close()
    other.close()


async def test_peer_close_is_reported_once() -> None:
    stream, rec, other = await _pair()
    other.close()
    assert await asyncio.wait_for(rec.closed, 5) is None
    assert stream.closed


async def test_write_backpressure_and_resume() -> None:
    stream, rec, other = await _pair()
    loop = asyncio.get_running_loop()
    block = b"x" * 65536
    while stream.writable:
        stream.write(block)
    assert not stream.writable
    got = 0
    while rec.writable_events == 0:
        got += len(await loop.sock_recv(other, 1 << 20))
    assert stream.writable and got > 0
    stream.abort()
    other.close()
