"""Client connections: a cap on how many are open, and timeouts for the ones that send nothing.

aiohttp closes a keep-alive connection only after its own idle timeout and never times out a
connection that has not sent its first request, so idle clients could hold every file descriptor.
`ConnectionGuard` wraps the protocol of each accepted connection:

- a connection must complete a request header within `header_timeout` seconds of being accepted
  (the TLS handshake included) or of sending the first byte of its next request;
- with no request in progress and nothing left to send, it is closed after `idle_timeout`;
- beyond `max_connections` open ones, a new connection is answered `503 Service Unavailable`
  (a Kubernetes `Status`, `Retry-After: 1`, which client-go retries) and closed.

A request is "in progress" from the moment its handler starts (headers parsed) until it returns;
a watch is in progress for as long as it streams. `RateLimitedLog` keeps errors that repeat as
fast as connections arrive (accept failing with EMFILE, refusals) to one line per interval.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge

from metallb_py.log import get_logger

log = get_logger("apiserver")

DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 90.0
# A refused connection gets this long to send its request before it is dropped unanswered.
REFUSAL_WAIT = 5.0
# Seconds between two log lines about the same repeating error.
LOG_INTERVAL = 10.0

OPEN = Gauge("apiserver_open_connections", "Client connections open now.")
CLOSED = Counter(
    "apiserver_connections_closed",
    "Client connections the server closed on its own: header_timeout, idle_timeout, or "
    "refused (over --max-connections).",
    ["reason"],
)
ACCEPT_ERRORS = Counter(
    "apiserver_accept_errors",
    "Failed accept() calls, e.g. out of file descriptors (EMFILE).",
)


class RateLimitedLog:
    """Logs the first occurrence at once, then at most one line per `interval` seconds carrying
    how many occurrences it stands for, so a storm of identical errors costs a few lines."""

    def __init__(self, event: str, interval: float = LOG_INTERVAL) -> None:
        self.event = event
        self.interval = interval
        self.last = -interval
        self.suppressed = 0
        self.fields: dict[str, Any] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.lines = 0

    def hit(self, **fields: Any) -> None:
        now = time.monotonic()
        self.fields = fields
        if now - self.last >= self.interval:
            self._emit(1 + self.suppressed, now)
            return
        self.suppressed += 1
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.last + self.interval - now, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self.suppressed:
            self._emit(self.suppressed, time.monotonic())

    def _emit(self, count: int, now: float) -> None:
        self.suppressed = 0
        self.last = now
        self.lines += 1
        log.warning(self.event, count=count, intervalSeconds=self.interval, **self.fields)


def _unavailable(message: str) -> bytes:
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "ServiceUnavailable",
            "details": {"retryAfterSeconds": 1},
            "code": 503,
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Refusal(asyncio.Protocol):
    """Over the cap: wait for the request, answer 503, close."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.transport: Any = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.guard.refusing += 1
        self.timer = asyncio.get_running_loop().call_later(REFUSAL_WAIT, transport.abort)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.guard.refusal)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.refusing -= 1
        if self.timer is not None:
            self.timer.cancel()


class _Guarded(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol and closes the connection when it overstays.

    The timeout is a deadline that moves, with one timer behind it that is only ever moved
    earlier: a busy keep-alive connection moves the deadline on every request, and the timer,
    when it fires early, sleeps again until the deadline. (Cancelling and re-creating a timer
    twice per request cost more than parsing the request line.)"""

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: Any = None
        self.active = 0
        self.phase = "header"  # header | active | idle
        self.deadline = 0.0  # loop time at which the phase's timeout expires
        self.timer: asyncio.TimerHandle | None = None

    def _arm(self, phase: str, delay: float) -> None:
        self.phase = phase
        loop = asyncio.get_running_loop()
        self.deadline = deadline = loop.time() + delay
        timer = self.timer
        if timer is not None:
            if timer.when() <= deadline:
                return  # it fires first and sleeps again until the deadline
            timer.cancel()
        self.timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.timer = None
        t = self.transport
        if t is None or t.is_closing() or self.active:
            return  # a request in progress is never cut; its end arms the idle timeout
        loop = asyncio.get_running_loop()
        if loop.time() < self.deadline:
            self.timer = loop.call_at(self.deadline, self._expire)
            return
        if self.phase == "idle" and t.get_write_buffer_size():
            # A response is still going out to a slow reader: not idle yet.
            self._arm("idle", self.guard.idle_timeout)
            return
        if self.phase == "header":
            # A client that cannot finish a header gets no graceful TLS shutdown either: that
            # would hold its descriptor for another few seconds.
            CLOSED.labels("header_timeout").inc()
            t.abort()
            return
        CLOSED.labels("idle_timeout").inc()
        t.close()

    # -- called around each request by the middleware ----------------------------------------
    def request_started(self) -> None:
        self.active += 1
        self.phase = "active"  # the timer may fire meanwhile; it does nothing while active

    def request_finished(self) -> None:
        self.active -= 1
        if not self.active and self.transport is not None and not self.transport.is_closing():
            self._arm("idle", self.guard.idle_timeout)

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.guard.open[self.inner] = self
        OPEN.set(len(self.guard.open))
        self._arm("header", self.guard.header_timeout)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.phase == "idle":  # the next request begins: it has header_timeout to arrive
            self._arm("header", self.guard.header_timeout)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.open.pop(self.inner, None)
        OPEN.set(len(self.guard.open))
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    """The protocol factory the listening socket uses, wrapping aiohttp's."""

    def __init__(
        self,
        factory: Callable[[], Any],
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        if max_connections < 1 or header_timeout <= 0 or idle_timeout <= 0:
            raise ValueError(
                "--max-connections, --request-header-timeout and --idle-timeout must be positive"
            )
        self.factory = factory
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.open: dict[Any, _Guarded] = {}
        self.refusing = 0
        self.refusal = _unavailable(
            f"too many open connections (the server's limit is {max_connections}); retry later"
        )
        self.refusals_log = RateLimitedLog("connectionsRefused")

    def __call__(self) -> asyncio.Protocol:
        if len(self.open) >= self.max_connections:
            CLOSED.labels("refused").inc()
            self.refusals_log.hit(
                limit=self.max_connections,
                reason="more connections than --max-connections: answered 503 and closed",
            )
            return _Refusal(self)
        return _Guarded(self, self.factory())

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Marks the connection busy while a handler runs, so no timeout cuts a request."""
        conn = self.open.get(request.protocol)
        if conn is None:
            return await handler(request)
        conn.request_started()
        try:
            return await handler(request)
        finally:
            conn.request_finished()


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite, with `ConnectionGuard` as the protocol factory and TLS handshakes held
    to the header timeout (asyncio's default would give an idle client 60 s)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        *,
        ssl_context: Any = None,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self.guard = guard
        self.host = host
        self.port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def server(self) -> asyncio.AbstractServer | None:
        return self._server

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {}
        if self._ssl_context is not None:
            extra["ssl_handshake_timeout"] = self.guard.header_timeout
            # A client that never answers close_notify must not hold its descriptor for long.
            extra["ssl_shutdown_timeout"] = min(self.guard.header_timeout, 5.0)
        self._server = await loop.create_server(
            self.guard,
            self.host,
            self.port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            **extra,
        )


def install_accept_error_log(loop: asyncio.AbstractEventLoop) -> RateLimitedLog:
    """Route the event loop's "accept() out of system resource" reports (one per failed accept
    burst, with a traceback each) to one counted line per interval; other reports go on as
    before. asyncio itself pauses accepting for a second after such a failure."""
    limited = RateLimitedLog("acceptFailed")
    previous = loop.get_exception_handler()

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "accept" in message:
            ACCEPT_ERRORS.inc()
            exc = context.get("exception")
            limited.hit(
                error=str(exc) if exc is not None else message,
                reason="accepting a connection failed; out of file descriptors means raise "
                "LimitNOFILE or lower --max-connections",
            )
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return limited
