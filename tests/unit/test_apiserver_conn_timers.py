"""The connection guard's timeouts, driven through its protocol wrapper with a real event loop
and short timeouts: a busy keep-alive connection is never cut, a request in progress is never
cut, an idle one goes after the idle timeout, and one that starts a request and stalls goes
after the header timeout even while the timer of a longer idle deadline is pending."""

from __future__ import annotations

import asyncio
from typing import Any

from metallb_py.apiserver.conns import ConnectionGuard

HEADER = 0.2
IDLE = 1.2


class _Transport:
    def __init__(self) -> None:
        self.how: str | None = None  # "close" | "abort" once the guard ended the connection
        self.at = 0.0

    def is_closing(self) -> bool:
        return self.how is not None

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.how, self.at = "close", asyncio.get_running_loop().time()

    def abort(self) -> None:
        self.how, self.at = "abort", asyncio.get_running_loop().time()


class _Inner:
    def connection_made(self, transport: Any) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


def _connect() -> tuple[Any, _Transport, float]:
    guard = ConnectionGuard(_Inner, header_timeout=HEADER, idle_timeout=IDLE)
    conn: Any = guard()
    t = _Transport()
    conn.connection_made(t)
    return conn, t, asyncio.get_running_loop().time()


def _request(conn: Any) -> None:
    conn.data_received(b"GET / HTTP/1.1\r\n\r\n")
    conn.request_started()
    conn.request_finished()


async def test_a_busy_keep_alive_connection_is_never_cut() -> None:
    conn, t, start = _connect()
    loop = asyncio.get_running_loop()
    while loop.time() - start < 2 * IDLE:
        _request(conn)
        await asyncio.sleep(HEADER / 4)
    assert t.how is None
    await asyncio.sleep(IDLE * 1.5)  # then idle: closed, gracefully
    assert t.how == "close"


async def test_a_request_in_progress_is_never_cut_and_its_end_arms_the_idle_timeout() -> None:
    conn, t, _ = _connect()
    conn.data_received(b"GET /watch HTTP/1.1\r\n\r\n")
    conn.request_started()
    await asyncio.sleep(IDLE * 2)
    assert t.how is None
    conn.request_finished()
    ended = asyncio.get_running_loop().time()
    await asyncio.sleep(IDLE * 2)
    assert t.how == "close" and t.at - ended >= IDLE * 0.9


async def test_a_request_started_then_stalled_goes_after_the_header_timeout() -> None:
    conn, t, _ = _connect()
    _request(conn)  # now idle
    # By now the timer has slept again, until the idle deadline (1.2 s after the request).
    await asyncio.sleep(HEADER * 1.5)
    conn.data_received(b"GET /api HTTP/1.1\r\n")  # half a request, then nothing
    began = asyncio.get_running_loop().time()
    await asyncio.sleep(HEADER * 3)
    # The header deadline (0.2 s after the first byte) comes before the idle one: the earlier
    # one wins, and the connection is aborted, not closed.
    assert t.how == "abort"
    assert HEADER * 0.9 <= t.at - began < IDLE / 2


async def test_a_silent_connection_goes_after_the_header_timeout() -> None:
    _, t, start = _connect()
    await asyncio.sleep(HEADER * 2)
    assert t.how == "abort" and t.at - start >= HEADER * 0.9
