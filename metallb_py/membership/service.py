"""The asyncio shell around `MembershipCore`: one UDP socket and one TCP listener on the
membership port (7946), the core's single timer, and the seed loop.

Everything protocol-shaped lives in the core (SWIM, Lifeguard, gossip) and the codec
(`wire.py`); this module only moves bytes and time. It implements the speaker's `Membership`
interface: `members()` is None until the first join attempt has finished (then every Node is a
layer-2 candidate, as without membership), afterwards the live speakers' names, ourselves
included; subscribers are called on every join, leave or update.

Limits: datagrams over `wire.MAX_PACKET_SIZE` are dropped by the codec; at most
`MAX_INBOUND_STREAMS` TCP connections are served at once (more are closed at once), each must
deliver its message within the profile's TCP timeout and may not exceed `wire.MAX_STREAM_SIZE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from metallb_py.log import get_logger
from metallb_py.membership import wire
from metallb_py.membership.config import MembershipConfig
from metallb_py.membership.core import MembershipCore, StreamKind, StreamRequest
from metallb_py.membership.crypto import Keyring
from metallb_py.membership.events import (
    JoinFinished,
    LeaveComplete,
    LocalHealthChanged,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
    ProbeRTT,
    SuspicionRefuted,
)
from metallb_py.membership.messages import Ack, Message, NodeState, Ping, PushPull
from netkit.timer import CoreTimer

log = get_logger("membership")

MAX_INBOUND_STREAMS = 64
RECV_BATCH = 256  # datagrams read per readiness callback before yielding to the loop
REJOIN_INTERVAL = 10.0  # seconds between join attempts to seed addresses that are not members
RTT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)

Addr = tuple[bytes, int]
Seeds = Callable[[], Awaitable[list[str]]]


def _packed(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def _text(addr: bytes) -> str:
    return str(ipaddress.ip_address(addr))


@dataclass
class RttHistogram:
    buckets: tuple[float, ...] = RTT_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(RTT_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        i = next((i for i, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
        self.counts[i] += 1
        self.total += seconds
        self.n += 1


class MembershipService:
    """A member of the speakers' cluster, named after this node."""

    def __init__(
        self,
        name: str,
        bind_addr: str,
        port: int,
        config: MembershipConfig,
        *,
        keyring: Keyring | None = None,
        label: str = "",
        seeds: Seeds | None = None,
        rejoin_interval: float = REJOIN_INTERVAL,
    ) -> None:
        ip = ipaddress.ip_address(bind_addr)
        if ip.is_unspecified:
            raise ValueError("the membership address must be this node's own address")
        self.name = name
        self.bind_addr = str(ip)
        self.port = port
        self.config = config
        self.keyring = keyring
        self.label = label
        self.seeds = seeds
        self.rejoin_interval = rejoin_interval
        self.family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._loop: asyncio.AbstractEventLoop | None = None
        self.core: MembershipCore | None = None
        self._sock: socket.socket | None = None
        self._server: asyncio.base_events.Server | None = None
        self._timer: CoreTimer | None = None
        self._subscribers: list[Callable[[], None]] = []
        self._formed = False
        self._left = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbound = 0
        self._pending_joins: set[Addr] = set()
        self._joined_once = asyncio.Event()
        self.dropped: Counter[str] = Counter()
        self.rtt = RttHistogram()
        self.failovers = 0

    # -- the speaker's Membership interface -------------------------------------------------------

    def members(self) -> frozenset[str] | None:
        if not self._formed or self.core is None:
            return None
        return self.core.members()

    def subscribe(self, on_change: Callable[[], None]) -> None:
        self._subscribers.append(on_change)

    async def leave(self, wait: float = 1.0) -> None:
        """Say goodbye so the others re-elect at once, then close the sockets."""
        if self.core is None or self._loop is None:
            return
        if not self.core.has_left:
            self.core.leave(self._loop.time())
            self._pump()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._left.wait(), wait)
        await self.close()

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self.core = MembershipCore(
            self.config,
            self.name,
            _packed(self.bind_addr),
            self.port,
            now=loop.time(),
            rng=random.Random(),
            size_of=self._size_of,
        )
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
        sock.bind((self.bind_addr, self.port))
        sock.setblocking(False)
        self._sock = sock
        loop.add_reader(sock.fileno(), self._on_readable)
        self._server = await asyncio.start_server(
            self._serve_stream, self.bind_addr, self.port, reuse_address=True
        )
        log.info(
            "membershipStarted",
            name=self.name,
            addr=f"{self.bind_addr}:{self.port}",
            encrypted=self.keyring is not None,
            label=self.label,
            probeInterval=self.config.probe_interval,
        )
        self._pump()

    async def run(self, stop: asyncio.Event) -> None:
        """Join the seeds, then keep trying those that are not members until `stop`."""
        if self.core is None:
            await self.start()
        first = True
        # The sockets stay open after `stop`: the speaker's shutdown still says goodbye (leave).
        while not stop.is_set() and not self._left.is_set():
            await self._join_seeds()
            if first:
                self._formed = True
                first = False
                log.info("membershipFormed", members=sorted(self.members() or ()))
                self._notify()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rejoin_interval)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        self._left.set()

    # -- seeds ------------------------------------------------------------------------------------

    async def _join_seeds(self) -> None:
        if self.seeds is None or self.core is None or self._loop is None:
            return
        try:
            addresses = await self.seeds()
        except Exception as exc:  # a failed Pod/Node list must not stop membership
            log.warning("membershipSeedsFailed", error=str(exc))
            return
        live = (NodeState.ALIVE, NodeState.SUSPECT)
        known = {_text(s.addr) for s in self.core.member_states().values() if s.state in live}
        targets = [(_packed(a), self.port) for a in addresses if a not in known]
        if not targets:
            return
        self._pending_joins = set(targets)
        self._joined_once.clear()
        self.core.join(targets, self._loop.time())
        self._pump()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._joined_once.wait(), self.config.tcp_timeout + 1.0)

    # -- datagrams --------------------------------------------------------------------------------

    def _size_of(self, msg: Message) -> int:
        return len(wire.encode_message(msg))

    def _on_readable(self) -> None:
        sock, core, loop = self._sock, self.core, self._loop
        if sock is None or core is None or loop is None:
            return
        for _ in range(RECV_BATCH):
            try:
                data, addr = sock.recvfrom(wire.MAX_PACKET_SIZE + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            try:
                msgs = wire.decode_packet(
                    data,
                    keyring=self.keyring,
                    label=self.label,
                    require_encryption=self._require_encryption,
                )
            except wire.WireError as exc:
                self.dropped[exc.reason] += 1
                continue
            core.messages_received(msgs, (_packed(addr[0]), addr[1]), loop.time())
        self._pump()

    @property
    def _require_encryption(self) -> bool:
        return self.keyring is not None and self.config.gossip_verify_incoming

    def _send_datagrams(self) -> None:
        core, sock = self.core, self._sock
        if core is None:
            return
        out = core.datagrams_to_send()
        if sock is None:
            return
        versions = {(s.addr, s.port): s.vsn for s in core.member_states().values()} if out else {}
        for dest, msgs in out:
            vsn = versions.get(dest, ())
            crc = len(vsn) > 1 and vsn[1] >= 5
            try:
                packet = wire.encode_packet(
                    msgs,
                    keyring=self.keyring if self.config.gossip_verify_outgoing else None,
                    label=self.label,
                    compress=self.config.enable_compression,
                    crc=crc,
                )
            except wire.WireError as exc:
                self.dropped[f"encode_{exc.reason}"] += 1
                continue
            try:
                sock.sendto(packet, (_text(dest[0]), dest[1]))
            except OSError:
                self.dropped["send"] += 1

    # -- the core's outputs -----------------------------------------------------------------------

    def _pump(self) -> None:
        """Carry out everything the core asks for, then re-arm its timer."""
        core, loop = self.core, self._loop
        if core is None or loop is None:
            return
        self._send_datagrams()
        for req in core.stream_requests():
            self._spawn(self._outbound_stream(req))
        changed = False
        while (event := core.next_event()) is not None:
            changed |= self._on_event(event)
        if changed and self._formed:
            self._notify()
        if self._timer is None:
            self._timer = CoreTimer(loop, self._on_timer)
        self._timer.arm(core.get_timer())

    def _on_timer(self) -> None:
        # Read what is already waiting first: a late ack must not lose to its probe's deadline.
        self._on_readable()
        if self.core is not None and self._loop is not None:
            self.core.handle_timer(self._loop.time())
            self._pump()

    def _notify(self) -> None:
        for cb in self._subscribers:
            cb()

    def _on_event(self, event: Any) -> bool:
        match event:
            case MemberJoined(name=name, addr=addr, port=port):
                log.info("memberJoined", member=name, addr=f"{_text(addr)}:{port}")
                return True
            case MemberLeft(name=name, reason=reason):
                self.failovers += 1
                if reason == "dead":
                    log.warning("memberFailed", member=name, reason=reason)
                else:
                    log.info("memberLeft", member=name, reason=reason)
                return True
            case MemberUpdated(name=name, addr=addr, port=port):
                log.info("memberUpdated", member=name, addr=f"{_text(addr)}:{port}")
                return True
            case MemberSuspected(name=name, by=by):
                log.warning("memberSuspected", member=name, by=by)
            case SuspicionRefuted(name=name):
                log.info("suspicionRefuted", member=name)
            case ProbeRTT(seconds=seconds):
                self.rtt.observe(seconds)
            case LocalHealthChanged(score=score):
                log.info("localHealthChanged", score=score)
            case JoinFinished(addr=addr, ok=ok):
                if not ok:
                    log.debug("membershipJoinFailed", addr=f"{_text(addr[0])}:{addr[1]}")
                self._pending_joins.discard(addr)
                if ok or not self._pending_joins:
                    self._joined_once.set()
            case LeaveComplete():
                self._left.set()
        return False

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- streams ----------------------------------------------------------------------------------

    def _stream_options(self) -> dict[str, Any]:
        return {
            "keyring": self.keyring if self.config.gossip_verify_outgoing else None,
            "label": self.label,
            "compress": self.config.enable_compression,
        }

    async def _outbound_stream(self, req: StreamRequest) -> None:
        loop = self._loop
        core = self.core
        if loop is None or core is None:
            return
        reply: PushPull | Ack | None = None
        ok = False
        writer: asyncio.StreamWriter | None = None
        try:
            budget = max(0.05, req.deadline - loop.time())
            async with asyncio.timeout(budget):
                reader, writer = await asyncio.open_connection(_text(req.addr[0]), req.addr[1])
                msg: Message | None = (
                    req.push_pull if req.kind is StreamKind.PUSH_PULL else req.ping
                )
                if msg is None:
                    return
                writer.write(
                    wire.encode_stream(msg, label_header_first=True, **self._stream_options())
                )
                await writer.drain()
                answer = await self._read_message(reader, expect_label_header=False)
                if isinstance(answer, PushPull | Ack):
                    reply, ok = answer, True
        except (OSError, TimeoutError, wire.WireError) as exc:
            if isinstance(exc, wire.WireError):
                self.dropped[exc.reason] += 1
            ok = False
        finally:
            if writer is not None:
                writer.close()
        if self.core is not None:
            self.core.stream_result(req.request_id, ok, reply if ok else None, loop.time())
            self._pump()

    async def _read_message(
        self, reader: asyncio.StreamReader, *, expect_label_header: bool
    ) -> Message | None:
        decoder = wire.StreamDecoder(
            keyring=self.keyring,
            label=self.label,
            require_encryption=self._require_encryption,
            expect_label_header=expect_label_header and bool(self.label),
        )
        while True:
            msg = decoder.feed(b"")
            if msg is not None:
                return msg
            chunk = await reader.read(65536)
            if not chunk:
                return None
            msg = decoder.feed(chunk)
            if msg is not None:
                return msg

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._inbound >= MAX_INBOUND_STREAMS:
            self.dropped["stream_limit"] += 1
            writer.close()
            return
        self._inbound += 1
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        try:
            async with asyncio.timeout(self.config.tcp_timeout):
                msg = await self._read_message(reader, expect_label_header=True)
                core, loop = self.core, self._loop
                if msg is None or core is None or loop is None:
                    return
                answer: Message | None = None
                if isinstance(msg, PushPull):
                    answer = core.merge_remote_state(msg, (_packed(peer[0]), peer[1]), loop.time())
                elif isinstance(msg, Ping):
                    answer = core.stream_ping(msg)
                self._pump()
                if isinstance(answer, PushPull | Ack):
                    writer.write(wire.encode_stream(answer, **self._stream_options()))
                    await writer.drain()
        except wire.WireError as exc:
            self.dropped[exc.reason] += 1
        except (OSError, TimeoutError):
            self.dropped["stream_timeout"] += 1
        finally:
            self._inbound -= 1
            writer.close()

    # -- metrics ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        core = self.core
        states: Counter[str] = Counter()
        if core is not None:
            for s in core.member_states().values():
                states[s.state.name.lower()] += 1
        return {
            "states": dict(states),
            "counters": dataclasses.asdict(core.counters) if core is not None else {},
            "dropped": dict(self.dropped),
            "rtt": self.rtt,
            "health": core.health_score if core is not None else 0,
        }
