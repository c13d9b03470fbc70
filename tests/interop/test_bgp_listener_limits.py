"""The passive listener under a flood (issue 16, item 15): per-address and total connection
limits, back-off on failing accept(), rate-limited logging, and the OPEN wait of accepted
connections. The same attack against a real `python -m bgp speak --passive` process with a
lowered descriptor limit is tests/e2e/test_bgp_listener_flood.py."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable

import pytest

from bgp import fsm, transport
from bgp.errors import HOLD_TIMER_EXPIRED
from bgp.events import CloseConnection, SessionDown
from bgp.fsm import ACCEPT_OPEN_WAIT, LARGE_HOLD_TIME, Session, SessionConfig
from bgp.messages import Notification, Open, decode, iter_messages
from bgp.speaker import PeerConfig, Speaker
from bgp.transport import Listener, RateLimitedLog, SocketOptions, dial


async def _listener(
    allowed: list[str], max_per_address: int = 4, max_total: int = 100
) -> tuple[Listener, list[socket.socket]]:
    got: list[socket.socket] = []
    lst = Listener(
        lambda s, p: got.append(s),
        port=0,
        addresses=("127.0.0.1",),
        max_per_address=max_per_address,
        max_total=max_total,
    )
    for a in allowed:
        lst.allow(a)
    lst.start()
    return lst, got


async def _connect(port: int, source: str) -> socket.socket:
    """A connection, or (reset while connecting) a closed socket, which counts as reset."""
    try:
        return await dial("127.0.0.1", port, SocketOptions(local_address=source))
    except ConnectionResetError:
        return socket.socket()  # closed by the caller's cleanup; `_is_reset` says True


async def _is_reset(sock: socket.socket) -> bool:
    with contextlib.suppress(OSError):
        sock.getpeername()
        return await _recv_reset(sock)
    return True


async def _recv_reset(sock: socket.socket) -> bool:
    loop = asyncio.get_running_loop()
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 10), 5)
    except ConnectionResetError:
        return True
    return data == b""


async def _settle(cond: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `cond` (state of the listener, which has no event to wait on) for `within` s."""
    deadline = time.monotonic() + within
    while not cond() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def test_per_address_limit_resets_the_excess_and_frees_slots_on_close() -> None:
    lst, got = await _listener(["127.0.0.1", "127.0.0.2"], max_per_address=2)
    clients: list[socket.socket] = []
    try:
        for _ in range(6):
            clients.append(await _connect(lst.bound_port, "127.0.0.1"))
        await _settle(lambda: lst.accepted + lst.limited == 6)
        assert (lst.accepted, lst.limited) == (2, 4)
        assert lst.live_connections("127.0.0.1") == 2
        assert [await _is_reset(c) for c in clients[2:]] == [True] * 4
        # Another address is not affected by the first one's flood.
        clients.append(await _connect(lst.bound_port, "127.0.0.2"))
        await _settle(lambda: lst.accepted == 3)
        assert lst.accepted == 3 and lst.live_connections() == 3
        # Closing an accepted connection gives its slot back.
        got[0].close()
        clients.append(await _connect(lst.bound_port, "127.0.0.1"))
        await _settle(lambda: lst.accepted == 4)
        assert lst.accepted == 4 and lst.live_connections("127.0.0.1") == 2
    finally:
        for s in clients + got:
            s.close()
        lst.close()


async def test_total_limit_across_addresses() -> None:
    lst, got = await _listener(["127.0.0.1", "127.0.0.2", "127.0.0.3"], max_total=3)
    clients: list[socket.socket] = []
    try:
        for src in ("127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.3"):
            clients.append(await _connect(lst.bound_port, src))
            await _settle(lambda n=len(clients): lst.accepted + lst.limited == n)  # type: ignore[misc]
        assert (lst.accepted, lst.limited) == (3, 2)
        assert await _is_reset(clients[-1])
    finally:
        for s in clients + got:
            s.close()
        lst.close()


def test_total_limit_follows_the_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport.resource, "getrlimit", lambda _r: (64, 4096))
    assert transport.total_limit() == 32
    monkeypatch.setattr(transport.resource, "getrlimit", lambda _r: (1 << 20, 1 << 20))
    assert transport.total_limit() == transport.MAX_CONN_TOTAL == 1024


class _FailingSocket:
    """Stands in for a listening socket whose accept() fails like one out of descriptors; its
    fileno is a real idle socket's, so the event loop can watch it."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls = 0
        self.fail: OSError | None = OSError(errno.EMFILE, "Too many open files")

    def fileno(self) -> int:
        return self.real.fileno()

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 179)

    def accept(self) -> tuple[socket.socket, tuple[str, int]]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        raise BlockingIOError


async def test_failing_accept_backs_off_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bgp")
    lst = Listener(lambda s, p: None, port=0, addresses=("127.0.0.1",))
    a, b = socket.socketpair()
    b.send(b"x")  # `a` stays readable, as a listening socket with a queued connection does
    fake = _FailingSocket(a)
    lst._socks.append(fake)  # type: ignore[arg-type]
    try:
        asyncio.get_running_loop().add_reader(a.fileno(), lst._accept, fake)  # type: ignore[arg-type]
        cpu = time.process_time()
        await asyncio.sleep(4.0)
        cpu = time.process_time() - cpu
        # Attempts at 0, 0.1, 0.3, 0.7, 1.5, 3.1 s: six in 4 s, where a busy loop makes
        # hundreds of thousands.
        assert 5 <= fake.calls <= 8, fake.calls
        assert lst.accept_errors == fake.calls
        assert cpu < 0.5
        assert lst._backoff == transport.ACCEPT_BACKOFF_MAX
        failed = [r for r in caplog.records if r.getMessage() == "acceptFailed"]
        assert len(failed) == 1 and failed[0].levelno == logging.WARNING
        assert "Too many open files" in failed[0].__dict__["error"]
        # Descriptors free again: the next attempt (within the cap) succeeds and says so.
        failures = fake.calls
        fake.fail = None
        await _settle(lambda: lst._backoff == 0, within=transport.ACCEPT_BACKOFF_MAX + 1)
        assert lst._backoff == 0
        recovered = [r for r in caplog.records if r.getMessage() == "acceptRecovered"]
        assert len(recovered) == 1 and recovered[0].__dict__["failures"] == failures
    finally:
        lst._socks.clear()
        asyncio.get_running_loop().remove_reader(a.fileno())
        lst.close()
        a.close()
        b.close()


async def test_transient_accept_errors_do_not_pause() -> None:
    lst = Listener(lambda s, p: None, port=0, addresses=("127.0.0.1",))
    a, b = socket.socketpair()
    fake = _FailingSocket(a)
    fake.fail = OSError(errno.ECONNABORTED, "Software caused connection abort")
    try:
        lst._accept(fake)  # type: ignore[arg-type]
        assert fake.calls == transport.ACCEPT_BATCH and lst._backoff == 0
        assert not lst._paused
    finally:
        a.close()
        b.close()


def test_rate_limited_log_counts_suppressed_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bgp")
    rl = RateLimitedLog("connectionRefused", logging.INFO, interval=0.2)
    for _ in range(1000):
        rl(peer="192.0.2.1")
    time.sleep(0.25)
    rl(peer="192.0.2.1")
    lines = [r for r in caplog.records if r.getMessage() == "connectionRefused"]
    assert [r.__dict__["count"] for r in lines] == [1, 1000]
    assert rl.total == 1001


async def test_unconfigured_flood_logs_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bgp")
    lst, _ = await _listener(["127.0.0.1"])
    try:
        for _ in range(50):
            s = await _connect(lst.bound_port, "127.0.0.9")
            s.close()
        await _settle(lambda: lst.refused == 50)
        assert lst.refused == 50
        lines = [r for r in caplog.records if r.getMessage() == "connectionRefused"]
        assert len(lines) == 1
    finally:
        lst.close()


# -- the OPEN wait --------------------------------------------------------------------------


def _config(**kw: object) -> SessionConfig:
    import ipaddress

    return SessionConfig(local_as=64512, router_id=ipaddress.IPv4Address("10.0.0.1"), **kw)  # type: ignore[arg-type]


def _drain(s: Session) -> list[object]:
    out: list[object] = []
    while (ev := s.next_event()) is not None:
        out.append(ev)
    return out


def test_accepted_connection_without_open_gets_hold_timer_expired_after_the_wait() -> None:
    assert ACCEPT_OPEN_WAIT == 30.0 < LARGE_HOLD_TIME
    s = Session(_config(passive=True))
    s.start(0.0)
    conn = s.accept_connection(100.0)
    s.data_to_send(conn)  # our OPEN
    s.handle_timer(100.0 + ACCEPT_OPEN_WAIT - 0.1)
    assert not any(isinstance(e, CloseConnection) for e in _drain(s))
    s.handle_timer(100.0 + ACCEPT_OPEN_WAIT)
    events = _drain(s)
    assert any(isinstance(e, CloseConnection) and e.conn_id == conn for e in events)
    down = [e for e in events if isinstance(e, SessionDown)]
    assert down and down[0].notification_sent == Notification(HOLD_TIMER_EXPIRED, 0)


def test_outgoing_connection_keeps_the_large_hold_time() -> None:
    s = Session(_config())
    s.start(0.0)
    events = _drain(s)
    conn = next(e.conn_id for e in events if type(e).__name__ == "ConnectRequested")  # type: ignore[attr-defined]
    s.connection_made(conn, 1.0)
    s.handle_timer(1.0 + ACCEPT_OPEN_WAIT + 1)
    assert not any(isinstance(e, CloseConnection) for e in _drain(s))
    s.handle_timer(1.0 + LARGE_HOLD_TIME)
    assert any(isinstance(e, CloseConnection) for e in _drain(s))


def test_open_wait_must_be_positive() -> None:
    with pytest.raises(ValueError):
        _config(accept_open_wait=0)
    assert fsm.SessionConfig.__dataclass_fields__["accept_open_wait"].default == ACCEPT_OPEN_WAIT


async def test_speaker_closes_a_silent_accepted_connection_after_the_open_wait() -> None:
    sp = Speaker(64512, "10.0.0.1", listen_port=0, listen_addresses=("127.0.0.1",),
                 accept_open_wait=0.5)  # fmt: skip
    sp.add_peer(PeerConfig("127.0.0.1", 64500, passive=True))
    sp.start()
    assert sp.listener is not None
    loop = asyncio.get_running_loop()
    sock = await _connect(sp.listener.bound_port, "127.0.0.1")
    try:
        data = b""
        started = loop.time()
        async with asyncio.timeout(10):
            while chunk := await loop.sock_recv(sock, 4096):
                data += chunk
        waited = loop.time() - started
        msgs = [decode(m) for m in iter_messages(bytearray(data))]
        assert isinstance(msgs[0], Open)
        assert msgs[-1] == Notification(HOLD_TIMER_EXPIRED, 0)
        assert 0.4 <= waited < 5
        await _settle(lambda: sp.listener is not None and sp.listener.live_connections() == 0)
        assert sp.listener.live_connections() == 0
    finally:
        sock.close()
        await sp.shutdown()
