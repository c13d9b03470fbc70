"""A simulated network of MembershipCores on a fake clock, for the membership unit tests.

Datagrams arrive after a random delay (and may be lost); stream requests are carried out by
calling the other core directly after a short delay. Members can be killed (they stop running
and nothing reaches them), cut off from each other (partitions), and stalled (as a busy event
loop: nothing is handled until the stall ends, then waiting datagrams go before timers).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from metallb_py.membership.config import MembershipConfig
from metallb_py.membership.core import MembershipCore, StreamKind, StreamRequest
from metallb_py.membership.events import Event
from metallb_py.membership.messages import Ack, Message, PushPull

Addr = tuple[bytes, int]
PORT = 7946


def addr_of(index: int) -> Addr:
    return (bytes([10, 0, 0, index + 1]), PORT)


@dataclass
class SimMember:
    name: str
    addr: Addr
    core: MembershipCore
    events: list[tuple[float, Event]] = field(default_factory=list)
    busy_until: float = 0.0
    timer_gen: int = 0
    timer_at: float | None = None


class SimNetwork:
    def __init__(
        self,
        config: MembershipConfig,
        n: int,
        *,
        seed: int = 1,
        delay: tuple[float, float] = (0.0002, 0.001),
        loss: float = 0.0,
        stream_delay: float = 0.001,
        timer_jitter: float = 0.0,
        start: bool = True,
    ) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.delay = delay
        self.loss = loss
        self.stream_delay = stream_delay
        self.timer_jitter = timer_jitter
        self.now = 0.0
        self.members: dict[str, SimMember] = {}
        self.by_addr: dict[Addr, str] = {}
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self._heap: list[tuple[float, int, int, Callable[[], None]]] = []
        self._seq = 0
        self.delivered = 0
        for i in range(n):
            self.add(f"node-{i}", addr_of(i))
        if start:
            self.join_all()

    # ------------------------------------------------------------ membership control

    def add(self, name: str, addr: Addr) -> SimMember:
        core = MembershipCore(
            self.config,
            name,
            addr[0],
            addr[1],
            now=self.now,
            rng=random.Random(self.rng.random()),
        )
        member = SimMember(name, addr, core)
        self.members[name] = member
        self.by_addr[addr] = name
        self.down.discard(name)
        self._after_call(member)
        return member

    def join_all(self) -> None:
        """Every member but the first joins the first."""
        names = list(self.members)
        first = self.members[names[0]]
        for name in names[1:]:
            member = self.members[name]
            member.core.join([first.addr], self.now)
            self._after_call(member)

    def kill(self, name: str) -> None:
        self.down.add(name)

    def restart(self, name: str, join: str) -> SimMember:
        member = self.add(name, self.members[name].addr)
        member.core.join([self.members[join].addr], self.now)
        self._after_call(member)
        return member

    def partition(self, side_a: set[str], side_b: set[str]) -> None:
        for a in side_a:
            for b in side_b:
                self.cut.add(frozenset((a, b)))

    def heal(self) -> None:
        self.cut.clear()

    def stall(self, name: str, seconds: float) -> None:
        member = self.members[name]
        member.busy_until = max(member.busy_until, self.now + seconds)

    def reachable(self, a: str, b: str) -> bool:
        return a not in self.down and b not in self.down and frozenset((a, b)) not in self.cut

    # ------------------------------------------------------------ running

    def _push(self, at: float, prio: int, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, prio * 10**9 + self._seq, self._seq, fn))

    def _run_on(self, member: SimMember, prio: int, fn: Callable[[], None]) -> None:
        """Run `fn` on `member` now, or when its stall ends (datagrams before timers)."""
        if member.name in self.down:
            return
        if self.now < member.busy_until:
            self._push(member.busy_until, prio, lambda: self._run_on(member, prio, fn))
            return
        fn()
        self._after_call(member)

    def _after_call(self, member: SimMember) -> None:
        core = member.core
        while (event := core.next_event()) is not None:
            member.events.append((self.now, event))
        for dest, msgs in core.datagrams_to_send():
            self._send(member, dest, msgs)
        for req in core.stream_requests():
            self._stream(member, req)
        at = core.get_timer()
        if at is not None and at != member.timer_at:
            member.timer_gen += 1
            member.timer_at = at
            gen = member.timer_gen
            fire = max(at, self.now) + self.rng.uniform(0, self.timer_jitter)

            def on_timer(member: SimMember = member, gen: int = gen) -> None:
                if gen != member.timer_gen or member.core is not core:
                    return
                member.timer_at = None
                self._run_on(member, 1, lambda: core.handle_timer(self.now))

            self._push(fire, 1, on_timer)

    def _send(self, sender: SimMember, dest: Addr, msgs: list[Message]) -> None:
        target = self.by_addr.get(dest)
        if target is None or not self.reachable(sender.name, target):
            return
        if self.rng.random() < self.loss:
            return
        at = self.now + self.rng.uniform(*self.delay)
        source = sender.addr

        def deliver() -> None:
            if not self.reachable(sender.name, target):
                return
            member = self.members[target]
            self.delivered += 1
            core = member.core
            self._run_on(member, 0, lambda: core.messages_received(msgs, source, self.now))

        self._push(at, 0, deliver)

    def _stream(self, sender: SimMember, req: StreamRequest) -> None:
        target = self.by_addr.get(req.addr)
        core = sender.core
        ok = target is not None and self.reachable(sender.name, target)
        reply: PushPull | Ack | None = None
        if ok and target is not None:
            other = self.members[target].core
            if req.kind is StreamKind.PUSH_PULL:
                assert req.push_pull is not None
                reply = other.merge_remote_state(req.push_pull, sender.addr, self.now)
            else:
                assert req.ping is not None
                reply = other.stream_ping(req.ping)
                ok = reply is not None
            self._after_call(self.members[target])
        at = self.now + self.stream_delay

        def result(reply: PushPull | Ack | None = reply, ok: bool = ok) -> None:
            if sender.core is core:
                rid = req.request_id
                self._run_on(sender, 0, lambda: core.stream_result(rid, ok, reply, self.now))

        self._push(at, 0, result)

    def run(self, seconds: float) -> None:
        self.run_until(lambda: False, seconds)

    def run_until(self, predicate: Callable[[], bool], timeout: float) -> float | None:
        """Advance until `predicate()` holds (returns the time) or `timeout` passes (None)."""
        end = self.now + timeout
        if predicate():
            return self.now
        while self._heap and self._heap[0][0] <= end:
            at, _, _, fn = heapq.heappop(self._heap)
            self.now = max(self.now, at)
            fn()
            if predicate():
                return self.now
        self.now = end
        return None

    # ------------------------------------------------------------ views

    def live(self) -> list[str]:
        return [name for name in self.members if name not in self.down]

    def views(self) -> dict[str, frozenset[str]]:
        return {name: self.members[name].core.members() for name in self.live()}

    def converged(self, expected: set[str] | None = None) -> bool:
        want = frozenset(expected if expected is not None else self.live())
        return all(view == want for view in self.views().values())
