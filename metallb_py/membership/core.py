"""The SWIM membership state machine (memberlist v0.2.x semantics plus Lifeguard), sans I/O.

`MembershipCore` owns no socket, task or clock: the asyncio shell feeds it decoded messages and
the time, and carries out what it asks for, the way aioquic's QuicConnection works. A Go
memberlist member (MetalLB's speaker) sees the same incarnation rules, refutations, gossip,
push-pull merges, nacks, dead-vs-left and protocol versions as from another Go member.

Inputs (every one takes `now`, a monotonic time in seconds, and never blocks):

* ``messages_received(msgs, source, now)``: the messages of one UDP packet (compound already
  split), with the packet's source address ``(ip bytes, port)``. The shell must pass in every
  datagram already waiting before it calls ``handle_timer`` for a due timer, so a late ack is seen
  before its probe is judged failed.
* ``handle_timer(now)``: call when ``get_timer()`` is due (calling early is harmless).
* ``join(addrs, now) -> list[int]``: asks for one join push-pull per address (stream requests).
* ``merge_remote_state(state, source, now) -> PushPull``: a push-pull *another member started*
  over TCP; returns our state to send back (taken before merging, as memberlist does).
* ``merge_exchange_reply(state, source, now) -> bool``: the reply to a push-pull *we started*;
  ``stream_result`` calls it for you, so a shell normally uses only ``stream_result``.
* ``stream_result(request_id, ok, reply, now)``: the outcome of a `StreamRequest` (the remote
  `PushPull` for a push-pull, the `Ack` for a TCP ping; ``ok=False`` on any failure/timeout).
* ``stream_ping(ping) -> Ack | None``: answer a ping that arrived over TCP (None: not for us).
* ``leave(now)``: graceful leave; a `LeaveComplete` event follows once the goodbye (a Dead
  message about ourselves with From == our name) has been gossiped enough times.
* ``local_state(join) -> PushPull``: our state, for a push-pull the shell sends on its own.

Outputs:

* ``datagrams_to_send() -> list[((ip, port), [Message, ...])]``: one entry per UDP packet
  (several messages make a compound packet); each fits udp_buffer_size by ``size_of`` with
  ``PACKET_RESERVE`` bytes left for the compound header, CRC and encryption. Gossip rides on
  pings, acks, nacks and indirect pings as in memberlist.
* ``stream_requests() -> list[StreamRequest]``: TCP work: push-pull (join, periodic
  anti-entropy, reconnect) and the TCP ping fallback; answer each with ``stream_result``.
* ``get_timer() -> float | None`` and ``next_event() -> Event | None`` (see events.py).

Queries: ``members()`` (alive and suspect names, ourselves included: what memberlist's
Members() returns and MetalLB treats as live), ``member_states()`` (name -> `MemberState`),
``counters`` (`Counters`, monotonic), ``health_score`` (Lifeguard's score, 0 = healthy),
``incarnation`` and ``has_left``.

We announce ourselves like a Go member: incarnation 1 at start, Vsn (1, 5, 2, 0, 0, 0), so Go
peers send us nack-requesting indirect pings (protocol >= 4) and TCP fallback pings (>= 3).

Beyond memberlist: ``reconnect_interval`` heals partitions (memberlist never probes the dead,
so two halves would never merge again). Every interval the core pings one member it holds as
dead (not left) that died within ``max(dead_retention, dead_node_reclaim_time)``; when it acks,
the core starts a join push-pull with it, and the side that was wrongly held dead refutes with
a higher incarnation. Dead members are remembered for that purpose in a capped list even after
memberlist's gossip_to_the_dead_time has dropped them from the member table.

Everything the core keeps is bounded: the broadcast queue (`MAX_BROADCASTS`), the remembered
dead (`MAX_REMEMBERED_DEAD`), pending acks and relays (`MAX_PENDING`), stream requests
(`MAX_STREAMS`), unread packets and events (`MAX_OUTPUT`; overflow is counted and dropped).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from metallb_py.membership.awareness import Awareness
from metallb_py.membership.config import MembershipConfig
from metallb_py.membership.events import (
    Event,
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
from metallb_py.membership.gossip import BroadcastQueue
from metallb_py.membership.messages import (
    DEFAULT_VSN,
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Message,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
)
from metallb_py.membership.suspicion import Suspicion, suspicion_timeout

Addr = tuple[bytes, int]

COMPOUND_HEADER_OVERHEAD = 2  # memberlist's compoundHeaderOverhead: type + count
COMPOUND_OVERHEAD = 2  # memberlist's compoundOverhead: a length per part
# Room kept free in every packet: compound header, CRC (5), AES-GCM (1 + 12 + 16), slack.
PACKET_RESERVE = 40
MAX_BROADCASTS = 4096
MAX_REMEMBERED_DEAD = 1024
MAX_PENDING = 1024
MAX_STREAMS = 64
MAX_OUTPUT = 8192
PUSH_PULL_SCALE_THRESHOLD = 32  # memberlist's pushPullScaleThreshold


def estimate_size(msg: Message) -> int:
    """A generous upper bound of a message's msgpack encoding (with its type byte).

    Our field names are at least as long as memberlist's Go names, every value is charged its
    widest msgpack form, so the real encoding is never larger.
    """
    return 1 + _estimate_struct(msg)


def _estimate_struct(value: object) -> int:
    size = 5
    for f in dataclasses.fields(value):  # type: ignore[arg-type]
        size += len(f.name) + 2 + _estimate_value(getattr(value, f.name))
    return size


def _estimate_value(value: object) -> int:
    if isinstance(value, bytes):
        return len(value) + 5
    if isinstance(value, str):
        return len(value.encode()) + 5
    if isinstance(value, tuple):
        return 5 + sum(_estimate_value(v) for v in value)
    if dataclasses.is_dataclass(value):
        return _estimate_struct(value)
    return 9


def push_pull_scale(interval: float, n: int) -> float:
    """memberlist's pushPullScale: slow anti-entropy down logarithmically past 32 members."""
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1.0
    return multiplier * interval


class StreamKind(enum.Enum):
    PUSH_PULL = "push-pull"
    PING = "ping"


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """TCP work for the shell: connect to `addr`, send, read the answer by `deadline`.

    PUSH_PULL: send `push_pull` (its `join` flag set) and read the remote PushPull.
    PING: send `ping` (memberlist's TCP fallback ping) and read the Ack.
    """

    request_id: int
    kind: StreamKind
    addr: Addr
    node: str  # the member's name, "" when joining by address only
    deadline: float
    push_pull: PushPull | None = None
    ping: Ping | None = None


@dataclass(frozen=True, slots=True)
class MemberState:
    name: str
    state: NodeState
    incarnation: int
    addr: bytes
    port: int
    meta: bytes
    vsn: tuple[int, ...]
    state_change: float


@dataclass(slots=True)
class Counters:
    """Monotonic counts for metrics."""

    probes_sent: int = 0
    probes_failed: int = 0
    indirect_probes_sent: int = 0
    indirect_probes_relayed: int = 0
    nacks_sent: int = 0
    nacks_received: int = 0
    tcp_pings_requested: int = 0
    tcp_ping_successes: int = 0
    suspicions_raised: int = 0
    suspicions_refuted: int = 0
    refutations: int = 0
    deaths: int = 0
    leaves: int = 0
    joins: int = 0
    push_pulls: int = 0
    push_pull_failures: int = 0
    push_pulls_rejected: int = 0
    reconnect_pings: int = 0
    reconnects: int = 0
    address_conflicts: int = 0
    ignored_messages: int = 0
    dropped_packets: int = 0
    dropped_events: int = 0


@dataclass(slots=True)
class _Node:
    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    state: NodeState
    state_change: float
    vsn: tuple[int, ...]

    @property
    def pmax(self) -> int:
        return self.vsn[1] if len(self.vsn) > 1 else 0

    @property
    def live(self) -> bool:
        return self.state in (NodeState.ALIVE, NodeState.SUSPECT)


@dataclass(slots=True)
class _Probe:
    seq: int
    name: str
    sent: float
    timeout_at: float  # end of the direct phase
    deadline: float  # end of the indirect phase
    indirect: bool = False
    expected_nacks: int = 0
    nacks: int = 0
    tcp_request: int | None = None
    tcp_ok: bool = False


@dataclass(slots=True)
class _Relay:
    requester: Addr
    seq: int
    nack: bool
    expires: float


@dataclass(slots=True)
class _Reconnect:
    name: str
    addr: Addr
    expires: float


@dataclass(slots=True)
class _Stream:
    kind: StreamKind
    addr: Addr
    join: bool
    announce: bool
    seq: int
    expires: float


@dataclass(slots=True)
class _Grave:
    addr: Addr
    died: float


_ZERO_VSN: tuple[int, ...] = (0, 0, 0, 0, 0, 0)


class MembershipCore:
    """One member's view of the cluster; see the module docstring for the I/O contract."""

    def __init__(
        self,
        config: MembershipConfig,
        name: str,
        addr: bytes,
        port: int,
        *,
        now: float,
        rng: random.Random,
        meta: bytes = b"",
        size_of: Callable[[Message], int] = estimate_size,
    ) -> None:
        self.config = config
        self.name = name
        self.addr = addr
        self.port = port
        self._rng = rng
        self._size_of = size_of
        self.counters = Counters()
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._broadcasts = BroadcastQueue(config.retransmit_mult, MAX_BROADCASTS)
        self._nodes: dict[str, _Node] = {}
        self._order: list[str] = []  # probe order, as memberlist's m.nodes
        self._probe_index = 0
        self._suspicions: dict[str, Suspicion] = {}
        self._graves: dict[str, _Grave] = {}
        self._reconnect_index = 0
        self._incarnation = 0
        self._seq = 0
        self._request_id = 0
        self._left = False
        self._leave_pending = False
        self._probe: _Probe | None = None
        # The last failed probe, still counting nacks that arrive just after its deadline.
        self._failed: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._reconnects: dict[int, _Reconnect] = {}
        self._streams: dict[int, _Stream] = {}
        self._packets: list[tuple[Addr, list[Message]]] = []
        self._requests: list[StreamRequest] = []
        self._events: deque[Event] = deque()
        # memberlist staggers each ticker randomly within its first period.
        self._next_probe = now + rng.uniform(0, config.probe_interval)
        self._next_gossip = (
            now + rng.uniform(0, config.gossip_interval)
            if config.gossip_interval > 0 and config.gossip_nodes > 0
            else math.inf
        )
        self._next_push_pull = (
            now + rng.uniform(0, config.push_pull_interval)
            if config.push_pull_interval > 0
            else math.inf
        )
        self._next_reconnect = (
            now + config.reconnect_interval if config.reconnect_interval > 0 else math.inf
        )
        self._incarnation += 1
        self._alive_node(
            Alive(self._incarnation, name, addr, port, meta, DEFAULT_VSN), now, bootstrap=True
        )

    # ----------------------------------------------------------------- queries

    def members(self) -> frozenset[str]:
        """Alive and suspect members, ourselves included (memberlist's Members())."""
        return frozenset(n.name for n in self._nodes.values() if n.live)

    def member_states(self) -> dict[str, MemberState]:
        return {
            n.name: MemberState(
                n.name, n.state, n.incarnation, n.addr, n.port, n.meta, n.vsn, n.state_change
            )
            for n in self._nodes.values()
        }

    @property
    def health_score(self) -> int:
        return self._awareness.score

    @property
    def incarnation(self) -> int:
        return self._incarnation

    @property
    def has_left(self) -> bool:
        return self._left

    # ----------------------------------------------------------------- outputs

    def datagrams_to_send(self) -> list[tuple[Addr, list[Message]]]:
        out, self._packets = self._packets, []
        return out

    def stream_requests(self) -> list[StreamRequest]:
        out, self._requests = self._requests, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        times = [self._next_gossip, self._next_push_pull, self._next_reconnect]
        probe = self._probe
        if probe is None:
            times.append(self._next_probe)
        elif not probe.indirect:
            times.append(probe.timeout_at)
        elif probe.tcp_request is not None and probe.tcp_request in self._streams:
            times.append(probe.deadline + self.config.probe_timeout)
        else:
            times.append(probe.deadline)
        times.extend(s.deadline for s in self._suspicions.values())
        times.extend(r.expires for r in self._relays.values())
        times.extend(r.expires for r in self._reconnects.values())
        times.extend(s.expires for s in self._streams.values())
        best = min(times)
        return None if best == math.inf else best

    # ------------------------------------------------------------------ inputs

    def messages_received(self, msgs: Iterable[Message], source: Addr, now: float) -> None:
        """Handle the messages of one UDP packet from `source`."""
        for msg in msgs:
            if isinstance(msg, Ping):
                self._on_ping(msg, source)
            elif isinstance(msg, IndirectPing):
                self._on_indirect_ping(msg, source, now)
            elif isinstance(msg, Ack):
                self._on_ack(msg, now)
            elif isinstance(msg, Nack):
                self._on_nack(msg, now)
            elif isinstance(msg, Suspect):
                self._suspect_node(msg, now)
            elif isinstance(msg, Alive):
                if msg.port == 0:  # memberlist: protocol < 2 leaves the port out
                    msg = dataclasses.replace(msg, port=self.port)
                self._alive_node(msg, now)
            elif isinstance(msg, Dead):
                self._dead_node(msg, now)
            else:  # push-pull is TCP only; user messages and errors we only count
                self.counters.ignored_messages += 1

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at `now`."""
        for name, suspicion in list(self._suspicions.items()):
            if suspicion.deadline <= now:
                self._suspicion_expired(name, suspicion, now)
        for seq, relay in list(self._relays.items()):
            if relay.expires <= now:
                del self._relays[seq]
                if relay.nack:
                    self.counters.nacks_sent += 1
                    self._send(relay.requester, [Nack(relay.seq)])
        for seq, rec in list(self._reconnects.items()):
            if rec.expires <= now:
                del self._reconnects[seq]
        for request_id, stream in list(self._streams.items()):
            if stream.expires <= now:  # the shell never answered: count it as failed
                self.stream_result(request_id, False, None, now)
        self._advance_probe(now)
        if self._probe is None and self._next_probe <= now:
            self._next_probe += self.config.probe_interval
            if self._next_probe <= now:  # a ticker drops the ticks it missed
                self._next_probe = now + self.config.probe_interval
            self._start_probe(now)
        if self._next_gossip <= now:
            self._next_gossip = max(self._next_gossip + self.config.gossip_interval, now)
            self._gossip(now)
        if self._next_push_pull <= now:
            interval = push_pull_scale(self.config.push_pull_interval, len(self._nodes))
            self._next_push_pull = now + interval
            self._periodic_push_pull(now)
        if self._next_reconnect <= now:
            self._next_reconnect = max(self._next_reconnect + self.config.reconnect_interval, now)
            self._reconnect_tick(now)

    def join(self, addrs: Iterable[Addr], now: float) -> list[int]:
        """Ask for a join push-pull with each address; `JoinFinished` reports each outcome."""
        return [
            rid
            for addr in addrs
            if (rid := self._request_push_pull(addr, "", now, join=True, announce=True)) is not None
        ]

    def local_state(self, join: bool) -> PushPull:
        """Everything we know, as a push-pull sends it (memberlist's sendLocalState)."""
        return PushPull(
            nodes=tuple(
                PushNodeState(n.name, n.addr, n.port, n.incarnation, n.state, n.meta, tuple(n.vsn))
                for n in (self._nodes[name] for name in self._order)
            ),
            join=join,
        )

    def merge_remote_state(self, state: PushPull, source: Addr, now: float) -> PushPull:
        """A push-pull another member started: returns our reply, then merges theirs."""
        reply = self.local_state(state.join)
        self.merge_exchange_reply(state, source, now)
        return reply

    def merge_exchange_reply(self, state: PushPull, source: Addr, now: float) -> bool:
        """Merge a remote state; False when its protocol versions are incompatible with ours."""
        if not self._verify_protocol(state.nodes):
            self.counters.push_pulls_rejected += 1
            return False
        self.counters.push_pulls += 1
        for r in state.nodes:
            if r.state == NodeState.ALIVE:
                msg = Alive(r.incarnation, r.name, r.addr, r.port, r.meta, r.vsn)
                self._alive_node(msg, now)
            elif r.state == NodeState.LEFT:
                self._dead_node(Dead(r.incarnation, r.name, r.name), now)
            else:
                # memberlist only suspects a member another one holds as dead.
                self._suspect_node(Suspect(r.incarnation, r.name, self.name), now)
        return True

    def stream_result(
        self, request_id: int, ok: bool, reply: PushPull | Ack | None, now: float
    ) -> None:
        """The outcome of a StreamRequest (ok=False for any failure or timeout)."""
        stream = self._streams.pop(request_id, None)
        if stream is None:
            return
        if stream.kind is StreamKind.PUSH_PULL:
            merged = False
            if ok and isinstance(reply, PushPull):
                merged = self.merge_exchange_reply(reply, stream.addr, now)
            else:
                self.counters.push_pull_failures += 1
            if stream.announce:
                self._emit(JoinFinished(stream.addr, merged))
            return
        probe = self._probe
        if ok and isinstance(reply, Ack) and reply.seq_no == stream.seq:
            self.counters.tcp_ping_successes += 1
            if probe is not None and probe.seq == stream.seq:
                probe.tcp_ok = True
        self._advance_probe(now)

    def stream_ping(self, ping: Ping) -> Ack | None:
        """Answer a ping received over TCP (memberlist's handleConn pingMsg)."""
        if ping.node and ping.node != self.name:
            self.counters.ignored_messages += 1
            return None
        return Ack(ping.seq_no)

    def leave(self, now: float) -> None:
        """Say goodbye: a Dead message about ourselves, From ourselves, gossiped at once."""
        if self._left:
            return
        self._left = True
        me = self._nodes[self.name]
        self._leave_pending = True
        self._dead_node(Dead(me.incarnation, self.name, self.name), now)
        if not any(n.live and n.name != self.name for n in self._nodes.values()):
            self._leave_finished()
        else:
            self._next_gossip = now

    # ------------------------------------------------------------ probing

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _ping(self, seq: int, node: str) -> Ping:
        return Ping(seq, node, self.addr, self.port, self.name)

    def _pick_probe_target(self, now: float) -> _Node | None:
        """memberlist's probe(): round robin over a shuffled list, reshuffled at each wrap."""
        checked = 0
        while checked < len(self._order) or self._probe_index >= len(self._order):
            if checked >= len(self._order):
                return None
            if self._probe_index >= len(self._order):
                self._reset_nodes(now)
                self._probe_index = 0
                checked += 1
                continue
            node = self._nodes[self._order[self._probe_index]]
            self._probe_index += 1
            if node.name == self.name or not node.live:
                checked += 1
                continue
            return node
        return None

    def _reset_nodes(self, now: float) -> None:
        """At each wrap drop members dead longer than gossip_to_the_dead_time, then shuffle."""
        cutoff = now - self.config.gossip_to_the_dead_time
        for name in list(self._order):
            node = self._nodes[name]
            if node.state == NodeState.DEAD and node.state_change < cutoff:
                del self._nodes[name]
                self._order.remove(name)
        self._rng.shuffle(self._order)

    def _start_probe(self, now: float) -> None:
        node = self._pick_probe_target(now)
        if node is None:
            return
        interval = self._awareness.scale(self.config.probe_interval)
        seq = self._next_seq()
        ping = self._ping(seq, node.name)
        self._probe = _Probe(seq, node.name, now, now + self.config.probe_timeout, now + interval)
        self.counters.probes_sent += 1
        dest = (node.addr, node.port)
        if node.state == NodeState.ALIVE:
            self._send(dest, [ping])
        else:
            # Lifeguard's buddy system: tell a suspect it is suspected so it refutes at once.
            suspect = Suspect(node.incarnation, node.name, self.name)
            self._send(dest, [ping, suspect], piggyback=False)

    def _advance_probe(self, now: float) -> None:
        probe = self._probe
        if probe is None:
            return
        node = self._nodes.get(probe.name)
        if node is None or not node.live:
            self._probe = None
            return
        if not probe.indirect:
            if now < probe.timeout_at:
                return
            self._start_indirect(probe, node, now)
            return
        if probe.tcp_ok:
            self._finish_probe()
            return
        if now < probe.deadline:
            return
        tcp_waiting = probe.tcp_request is not None and probe.tcp_request in self._streams
        if tcp_waiting and now < probe.deadline + self.config.probe_timeout:
            return
        self._probe_failed(probe, node, now)

    def _start_indirect(self, probe: _Probe, node: _Node, now: float) -> None:
        probe.indirect = True
        # If we ran late (a stalled loop), still give the indirect phase its share.
        rest = self._awareness.scale(self.config.probe_interval) - self.config.probe_timeout
        probe.deadline = max(probe.deadline, now + max(rest, 0.0))
        peers = [
            n
            for n in self._nodes.values()
            if n.name not in (self.name, node.name) and n.state == NodeState.ALIVE
        ]
        peers = self._rng.sample(peers, min(self.config.indirect_checks, len(peers)))
        for peer in peers:
            want_nack = peer.pmax >= 4
            if want_nack:
                probe.expected_nacks += 1
            ind = IndirectPing(
                probe.seq, node.addr, node.port, node.name, want_nack,
                self.addr, self.port, self.name,
            )  # fmt: skip
            self.counters.indirect_probes_sent += 1
            self._send((peer.addr, peer.port), [ind])
        if not self.config.disable_tcp_pings and node.pmax >= 3:
            rid = self._new_stream(
                StreamKind.PING, (node.addr, node.port), node.name, probe.deadline, now,
                ping=self._ping(probe.seq, node.name), seq=probe.seq,
            )  # fmt: skip
            if rid is not None:
                probe.tcp_request = rid
                self.counters.tcp_pings_requested += 1

    def _finish_probe(self, health_delta: int = -1) -> None:
        """End the probe; an answered one (-1) improves our health score."""
        self._probe = None
        self._apply_health(health_delta)

    def _probe_failed(self, probe: _Probe, node: _Node, now: float) -> None:
        # Lifeguard: missing nacks mean *we* may be the problem; without nack-capable peers
        # any failed probe counts against us.
        delta = max(probe.expected_nacks - probe.nacks, 0) if probe.expected_nacks > 0 else 1
        self._finish_probe(delta)
        # A relay nacks probe_timeout after it got our request, which is about when our
        # deadline falls (memberlist's defaults have interval = 2 * timeout): a nack that
        # arrives up to another probe_timeout late still clears the penalty it would have.
        probe.deadline = now + self.config.probe_timeout
        self._failed = probe if probe.expected_nacks > 0 else None
        self.counters.probes_failed += 1
        self._suspect_node(Suspect(node.incarnation, node.name, self.name), now)

    def _apply_health(self, delta: int) -> None:
        if self._awareness.apply_delta(delta):
            self._emit(LocalHealthChanged(self._awareness.score))

    def _on_ping(self, ping: Ping, source: Addr) -> None:
        if ping.node and ping.node != self.name:
            self.counters.ignored_messages += 1
            return
        has_source = ping.source_addr and ping.source_port
        dest = (ping.source_addr, ping.source_port) if has_source else source
        self._send(dest, [Ack(ping.seq_no)])

    def _on_indirect_ping(self, ind: IndirectPing, source: Addr, now: float) -> None:
        if len(self._relays) >= MAX_PENDING:
            self.counters.ignored_messages += 1
            return
        port = ind.port or self.port
        seq = self._next_seq()
        requester = (
            (ind.source_addr, ind.source_port) if ind.source_addr and ind.source_port else source
        )
        self._relays[seq] = _Relay(requester, ind.seq_no, ind.nack, now + self.config.probe_timeout)
        self.counters.indirect_probes_relayed += 1
        self._send((ind.target, port), [self._ping(seq, ind.node)])

    def _on_ack(self, ack: Ack, now: float) -> None:
        probe = self._probe
        if probe is not None and ack.seq_no == probe.seq:
            if not probe.indirect:
                self._emit(ProbeRTT(probe.name, max(now - probe.sent, 0.0)))
            self._finish_probe()
            return
        relay = self._relays.pop(ack.seq_no, None)
        if relay is not None:
            self._send(relay.requester, [Ack(relay.seq)])
            return
        rec = self._reconnects.pop(ack.seq_no, None)
        if rec is not None:
            self.counters.reconnects += 1
            if not any(s.addr == rec.addr for s in self._streams.values()):
                self._request_push_pull(rec.addr, rec.name, now, join=True, announce=False)

    def _on_nack(self, nack: Nack, now: float) -> None:
        probe = self._probe
        if probe is not None and nack.seq_no == probe.seq and probe.indirect:
            self.counters.nacks_received += 1
            probe.nacks = min(probe.nacks + 1, probe.expected_nacks)
            return
        late = self._failed
        if late is not None and nack.seq_no == late.seq and now <= late.deadline:
            self.counters.nacks_received += 1
            if late.nacks < late.expected_nacks:
                late.nacks += 1
                self._apply_health(-1)

    # ------------------------------------------------------------ state rules

    def _alive_node(self, a: Alive, now: float, bootstrap: bool = False) -> None:
        if self._left and a.node == self.name:
            return  # a leaving member never rejoins from a stale alive
        if len(a.vsn) >= 3 and (a.vsn[0] == 0 or a.vsn[1] == 0 or a.vsn[0] > a.vsn[1]):
            self.counters.ignored_messages += 1
            return
        node = self._nodes.get(a.node)
        updates_node = False
        if node is None:
            vsn = tuple(a.vsn[:6]) if len(a.vsn) > 5 else _ZERO_VSN
            node = _Node(a.node, a.addr, a.port, a.meta, 0, NodeState.DEAD, now, vsn)
            self._add_node(node)
        elif node.addr != a.addr or node.port != a.port:
            reclaim = self.config.dead_node_reclaim_time
            can_reclaim = reclaim > 0 and now - node.state_change > reclaim
            if node.state == NodeState.LEFT or (node.state == NodeState.DEAD and can_reclaim):
                updates_node = True
            else:
                self.counters.address_conflicts += 1
                return
        is_local = node.name == self.name
        if a.incarnation <= node.incarnation and not is_local and not updates_node:
            return
        if a.incarnation < node.incarnation and is_local:
            return
        self._suspicions.pop(a.node, None)
        old_state, old_meta, old_addr = node.state, node.meta, (node.addr, node.port)
        if not bootstrap and is_local:
            # A restarted member may see its old incarnation with other meta: refute that.
            if (
                a.incarnation == node.incarnation
                and a.meta == node.meta
                and tuple(a.vsn) == node.vsn
            ):
                return
            self._refute(node, a.incarnation, None, now)
        else:
            self._broadcast(a.node, a)
            if len(a.vsn) >= 6:
                node.vsn = tuple(a.vsn[:6])
            node.incarnation = a.incarnation
            node.meta = a.meta
            node.addr = a.addr
            node.port = a.port
            if node.state != NodeState.ALIVE:
                node.state = NodeState.ALIVE
                node.state_change = now
        if old_state in (NodeState.DEAD, NodeState.LEFT) and node.state == NodeState.ALIVE:
            self._graves.pop(node.name, None)
            self.counters.joins += 1
            self._emit(MemberJoined(node.name, node.addr, node.port, node.meta))
        elif node.meta != old_meta or (node.addr, node.port) != old_addr:
            self._emit(MemberUpdated(node.name, node.addr, node.port, node.meta))
        if old_state == NodeState.SUSPECT and node.state == NodeState.ALIVE:
            self.counters.suspicions_refuted += 1
            self._emit(SuspicionRefuted(node.name))

    def _suspect_node(self, s: Suspect, now: float) -> None:
        node = self._nodes.get(s.node)
        if node is None or s.incarnation < node.incarnation:
            return
        timer = self._suspicions.get(s.node)
        if timer is not None:
            # An independent accuser shortens the timer; new information is re-gossiped.
            if timer.confirm(s.from_, now):
                self._broadcast(s.node, s)
            return
        if node.state != NodeState.ALIVE:
            return
        if node.name == self.name:
            self._refute(node, s.incarnation, s.from_, now)
            return
        self._broadcast(s.node, s)
        self.counters.suspicions_raised += 1
        node.incarnation = s.incarnation
        node.state = NodeState.SUSPECT
        node.state_change = now
        # k: confirmations expected from the others (all but us and the suspect).
        n = len(self._nodes)
        k = self.config.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        min_t = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval)
        max_t = self.config.suspicion_max_timeout_mult * min_t
        self._suspicions[s.node] = Suspicion(s.from_, k, min_t, max_t, now)
        self._emit(MemberSuspected(s.node, s.from_))

    def _suspicion_expired(self, name: str, suspicion: Suspicion, now: float) -> None:
        del self._suspicions[name]
        node = self._nodes.get(name)
        if node is None or node.state != NodeState.SUSPECT or node.state_change != suspicion.start:
            return
        self._dead_node(Dead(node.incarnation, name, self.name), now)

    def _dead_node(self, d: Dead, now: float) -> None:
        node = self._nodes.get(d.node)
        if node is None or d.incarnation < node.incarnation:
            return
        self._suspicions.pop(d.node, None)
        if node.state in (NodeState.DEAD, NodeState.LEFT):
            return
        if node.name == self.name:
            if not self._left:
                self._refute(node, d.incarnation, d.from_, now)
                return
            self._broadcast(d.node, d, self._leave_finished)
        else:
            self._broadcast(d.node, d)
        node.incarnation = d.incarnation
        left = d.node == d.from_
        node.state = NodeState.LEFT if left else NodeState.DEAD
        node.state_change = now
        if left:
            self.counters.leaves += 1
            self._graves.pop(node.name, None)
        else:
            self.counters.deaths += 1
            if node.name != self.name:
                self._remember_dead(node, now)
        self._emit(MemberLeft(node.name, "left" if left else "dead"))

    def _refute(self, me: _Node, accused: int, accuser: str | None, now: float) -> None:
        """Beat the accusation's incarnation and gossip that we are alive."""
        inc = self._incarnation + 1
        if accused >= inc:
            inc = accused + 1
        self._incarnation = inc
        me.incarnation = inc
        self._apply_health(1)
        alive = Alive(inc, me.name, me.addr, me.port, me.meta, me.vsn)
        self._broadcast(me.name, alive)
        self.counters.refutations += 1
        self._emit(SuspicionRefuted(me.name))
        # Ours beyond memberlist: the accuser hears it at once instead of at the next gossip.
        accuser_node = self._nodes.get(accuser) if accuser and accuser != self.name else None
        if accuser_node is not None and accuser_node.live:
            self._send((accuser_node.addr, accuser_node.port), [alive], piggyback=False)

    def _verify_protocol(self, remote: Iterable[PushNodeState]) -> bool:
        """memberlist's verifyProtocol: every member must speak within everyone's range."""
        remote = list(remote)
        maxpmin = maxdmin = 0
        minpmax = mindmax = 255
        ranges = [r.vsn for r in remote if r.state == NodeState.ALIVE and len(r.vsn) >= 6]
        ranges += [n.vsn for n in self._nodes.values() if n.state == NodeState.ALIVE]
        for v in ranges:
            maxpmin, minpmax = max(maxpmin, v[0]), min(minpmax, v[1])
            maxdmin, mindmax = max(maxdmin, v[3]), min(mindmax, v[4])
        speaking = [r.vsn if len(r.vsn) >= 6 else _ZERO_VSN for r in remote]
        speaking += [n.vsn for n in self._nodes.values()]
        return all(maxpmin <= v[2] <= minpmax and maxdmin <= v[5] <= mindmax for v in speaking)

    # ------------------------------------------------------------ gossip and anti-entropy

    def _gossip(self, now: float) -> None:
        """Send queued broadcasts to a few live, suspect or recently dead members."""
        if not len(self._broadcasts):
            return
        dead_cutoff = now - self.config.gossip_to_the_dead_time
        targets = [
            n
            for n in self._nodes.values()
            if n.name != self.name
            and (n.live or (n.state == NodeState.DEAD and n.state_change >= dead_cutoff))
        ]
        targets = self._rng.sample(targets, min(self.config.gossip_nodes, len(targets)))
        limit = self.config.udp_buffer_size - PACKET_RESERVE
        for node in targets:
            msgs = self._broadcasts.get(COMPOUND_OVERHEAD, limit, len(self._nodes))
            if not msgs:
                return
            self._emit_packet((node.addr, node.port), msgs)

    def _periodic_push_pull(self, now: float) -> None:
        peers = [
            n for n in self._nodes.values() if n.name != self.name and n.state == NodeState.ALIVE
        ]
        if peers:
            node = self._rng.choice(peers)
            self._request_push_pull((node.addr, node.port), node.name, now, join=False)

    def _reconnect_tick(self, now: float) -> None:
        """Ours: ping one member held dead, so a healed partition finds its way back."""
        window = max(self.config.dead_retention, self.config.dead_node_reclaim_time)
        for name, grave in list(self._graves.items()):
            node = self._nodes.get(name)
            if grave.died < now - window or (node is not None and node.state != NodeState.DEAD):
                del self._graves[name]
        if not self._graves or len(self._reconnects) >= MAX_PENDING:
            return
        names = sorted(self._graves)
        self._reconnect_index %= len(names)
        name = names[self._reconnect_index]
        self._reconnect_index += 1
        grave = self._graves[name]
        seq = self._next_seq()
        self._reconnects[seq] = _Reconnect(name, grave.addr, now + self.config.probe_interval)
        self.counters.reconnect_pings += 1
        self._send(grave.addr, [self._ping(seq, name)])

    def _remember_dead(self, node: _Node, now: float) -> None:
        self._graves.pop(node.name, None)
        self._graves[node.name] = _Grave((node.addr, node.port), now)
        while len(self._graves) > MAX_REMEMBERED_DEAD:
            del self._graves[next(iter(self._graves))]

    def _request_push_pull(
        self, addr: Addr, name: str, now: float, *, join: bool, announce: bool = False
    ) -> int | None:
        return self._new_stream(
            StreamKind.PUSH_PULL, addr, name, now + self.config.tcp_timeout, now,
            push_pull=self.local_state(join), join=join, announce=announce,
        )  # fmt: skip

    def _new_stream(
        self,
        kind: StreamKind,
        addr: Addr,
        name: str,
        deadline: float,
        now: float,
        *,
        push_pull: PushPull | None = None,
        ping: Ping | None = None,
        join: bool = False,
        announce: bool = False,
        seq: int = 0,
    ) -> int | None:
        if len(self._streams) >= MAX_STREAMS:
            self.counters.dropped_packets += 1
            if announce:
                self._emit(JoinFinished(addr, False))
            return None
        self._request_id += 1
        rid = self._request_id
        # If the shell never answers, give up a TCP timeout after the deadline.
        expires = deadline + self.config.tcp_timeout
        self._streams[rid] = _Stream(kind, addr, join, announce, seq, expires)
        self._requests.append(StreamRequest(rid, kind, addr, name, deadline, push_pull, ping))
        return rid

    # ------------------------------------------------------------ plumbing

    def _add_node(self, node: _Node) -> None:
        """Insert at a random offset, as memberlist does, so probe order stays random."""
        self._nodes[node.name] = node
        n = len(self._order)
        offset = self._rng.randrange(n) if n else 0
        self._order.append(node.name)
        self._order[offset], self._order[n] = self._order[n], self._order[offset]

    def _broadcast(
        self, name: str, msg: Message, on_finished: Callable[[], None] | None = None
    ) -> None:
        self._broadcasts.queue(name, msg, self._size_of(msg), on_finished)

    def _leave_finished(self) -> None:
        if self._leave_pending:
            self._leave_pending = False
            self._emit(LeaveComplete())

    def _send(self, dest: Addr, msgs: list[Message], piggyback: bool = True) -> None:
        """Queue one packet to `dest`, filled up with gossip as memberlist's sendMsg does."""
        if piggyback:
            used = sum(self._size_of(m) for m in msgs) + COMPOUND_OVERHEAD * len(msgs)
            limit = self.config.udp_buffer_size - PACKET_RESERVE - used
            extra = self._broadcasts.get(COMPOUND_OVERHEAD, limit, len(self._nodes))
            msgs = msgs + extra
        self._emit_packet(dest, msgs)

    def _emit_packet(self, dest: Addr, msgs: list[Message]) -> None:
        if len(self._packets) >= MAX_OUTPUT:
            self.counters.dropped_packets += 1
            return
        self._packets.append((dest, msgs))

    def _emit(self, event: Event) -> None:
        if len(self._events) >= MAX_OUTPUT:
            self.counters.dropped_events += 1
            return
        self._events.append(event)
