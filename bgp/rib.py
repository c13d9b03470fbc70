"""What the speaker originates and what each peer holds from it: pure, no I/O, no clock.

- `Rib` — what we originate: per family, prefix -> `RouteAttrs`, for every peer or for named
  peers only (a targeted announcement overrides the general one for those peers).
- `RibOut` — one peer's Adj-RIB-Out: what the peer holds from us, the changes not sent yet,
  and the UPDATE stream that closes the gap (packed by `bgp.packing.Packer`), ending a full
  resync with End-of-RIB per family.
- `RibOut.next_batch` — the UPDATEs that go out in one write: up to `BATCH_OCTETS`, with an
  End-of-RIB alone at the end of a batch (the session, not the stream, sends it and keeps track
  of it). The asyncio shell (`bgp.speaker.Peer`) writes batches while TCP drains them, at most
  `WRITE_BUDGET` octets before it lets other peers run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bgp.context import AFI_IPV4, AFI_IPV6
from bgp.packing import Packer, RouteAttrs, group_by_attrs

BATCH_OCTETS = 65536  # UPDATE octets joined into one write (one call into the session)
WRITE_BUDGET = 1 << 20  # octets one peer writes before yielding to the event loop

FAMILIES = (AFI_IPV4, AFI_IPV6)
Message = tuple[bytes, int, int]  # (UPDATE wire bytes, prefixes in it, End-of-RIB AFI or 0)


def _tagged(messages: Iterator[tuple[bytes, int]]) -> Iterator[Message]:
    for wire, count in messages:
        yield wire, count, 0


@dataclass(frozen=True)
class Batch:
    """UPDATEs for one write (wire bytes each), then End-of-RIB for `eor_afi` (0: none), which
    goes through the session after them."""

    updates: list[bytes]
    octets: int
    prefixes: int
    eor_afi: int


class Rib:
    """Routes we originate (see the module docstring)."""

    def __init__(self) -> None:
        self.common: dict[int, dict[bytes, RouteAttrs]] = {afi: {} for afi in FAMILIES}
        self.targeted: dict[str, dict[int, dict[bytes, RouteAttrs]]] = {}

    def __len__(self) -> int:
        return sum(len(t) for t in self.common.values())

    def adopt(self, afi: int, table: dict[bytes, RouteAttrs]) -> None:
        """Take `table` as the family's routes for every peer (bulk load, no copy)."""
        if self.common[afi]:
            self.common[afi].update(table)
        else:
            self.common[afi] = table

    def announce(
        self, afi: int, key: bytes, attrs: RouteAttrs, peers: Iterable[str] | None
    ) -> None:
        if peers is None:
            self.common[afi][key] = attrs
            return
        for p in peers:
            self.targeted.setdefault(p, {a: {} for a in FAMILIES})[afi][key] = attrs

    def withdraw(self, afi: int, key: bytes, peers: Iterable[str] | None) -> None:
        """Without `peers`: gone for everyone. With: the named peers' targeted entries only."""
        if peers is None:
            self.common[afi].pop(key, None)
            for t in self.targeted.values():
                t[afi].pop(key, None)
            return
        for p in peers:
            own = self.targeted.get(p)
            if own is not None:
                own[afi].pop(key, None)

    def lookup(self, peer: str, afi: int, key: bytes) -> RouteAttrs | None:
        t = self.targeted.get(peer)
        if t is not None:
            hit = t[afi].get(key)
            if hit is not None:
                return hit
        return self.common[afi].get(key)

    def desired(self, peer: str, afi: int) -> dict[bytes, RouteAttrs]:
        """Everything this peer should hold for the family."""
        t = self.targeted.get(peer)
        if t is None or not t[afi]:
            return self.common[afi]
        merged = dict(self.common[afi])
        merged.update(t[afi])
        return merged

    def forget_peer(self, peer: str) -> None:
        self.targeted.pop(peer, None)


@dataclass
class RibOut:
    """One peer's Adj-RIB-Out and the UPDATEs still to send (see the module docstring)."""

    sent: dict[int, dict[bytes, RouteAttrs]] = field(
        default_factory=lambda: {afi: {} for afi in FAMILIES}
    )
    pending: dict[int, dict[bytes, RouteAttrs | None]] = field(
        default_factory=lambda: {afi: {} for afi in FAMILIES}
    )
    eor_due: list[int] = field(default_factory=list)
    active: set[int] = field(default_factory=set)  # families the session carries
    _queue: list[Iterator[Message]] = field(default_factory=list)
    _resync: dict[int, dict[bytes, RouteAttrs]] = field(default_factory=dict)
    _shared: set[int] = field(default_factory=set)  # families whose `sent` IS the Rib's table
    _queued_prefixes: int = 0

    def start(self, families: Iterable[int], desired: dict[int, dict[bytes, RouteAttrs]]) -> None:
        """A new session: the peer holds nothing; send `desired`, then End-of-RIB per family."""
        self.active = set(families)
        self.sent = {afi: {} for afi in FAMILIES}
        self._shared.clear()
        self.pending = {afi: {} for afi in FAMILIES}
        self._queue.clear()
        self._queued_prefixes = 0
        self._resync = {afi: desired.get(afi, {}) for afi in sorted(self.active)}
        self.eor_due = sorted(self.active)

    def stop(self) -> None:
        """Session gone: nothing is sent until the next `start`."""
        self.active = set()
        self._queue.clear()
        self._resync.clear()
        self.eor_due = []
        self._queued_prefixes = 0
        for afi in FAMILIES:
            self.pending[afi].clear()

    def refresh(self, afi: int, desired: dict[bytes, RouteAttrs]) -> None:
        """Route refresh: send the family's whole table again (the peer asked for it)."""
        if afi not in self.active:
            return
        self.sent[afi] = {}
        self._shared.discard(afi)
        self.pending[afi].clear()
        self._resync[afi] = desired

    def unshare(self, afi: int) -> None:
        """The shared table is about to change: keep a private copy of what the peer holds."""
        if afi in self._shared:
            self._shared.discard(afi)
            self.sent[afi] = dict(self.sent[afi])

    def change(self, afi: int, key: bytes, attrs: RouteAttrs | None) -> None:
        """The route's desired state for this peer is now `attrs` (None: withdrawn)."""
        if afi in self.active:
            self.pending[afi][key] = attrs

    @property
    def idle(self) -> bool:
        return not (
            self._queue or self._resync or self.eor_due or any(self.pending[a] for a in FAMILIES)
        )

    @property
    def announced(self) -> int:
        return sum(len(s) for s in self.sent.values())

    @property
    def pending_count(self) -> int:
        return (
            sum(len(p) for p in self.pending.values())
            + sum(len(r) for r in self._resync.values())
            + self._queued_prefixes
        )

    def _plan(self, packer: Packer) -> None:
        """Turn the resync tables and pending changes into queued UPDATE generators."""
        for afi, table in list(self._resync.items()):
            del self._resync[afi]
            if not packer.can_send(afi):
                continue
            # What the peer holds is exactly the table: share it instead of copying (100 000
            # routes to N peers cost one table). `unshare` copies before the table changes.
            self.sent[afi] = table
            self._shared.add(afi)
            self._queued_prefixes += len(table)
            self._queue.append(_tagged(packer.announce(afi, group_by_attrs(table.items()))))
        if self.eor_due:  # End-of-RIB follows the initial table, before later changes
            self._queue.append(iter([(packer.end_of_rib(afi), 0, afi) for afi in self.eor_due]))
            self.eor_due = []
        for afi in FAMILIES:
            pend = self.pending[afi]
            if not pend:
                continue
            self.pending[afi] = {}
            if not packer.can_send(afi):
                continue
            sent = self.sent[afi]
            gone = [k for k, a in pend.items() if a is None and k in sent]
            for k in gone:
                del sent[k]
            changed: list[tuple[bytes, RouteAttrs]] = []
            for k, a in pend.items():
                if a is not None and sent.get(k) != a:
                    sent[k] = a
                    changed.append((k, a))
            if gone:
                self._queued_prefixes += len(gone)
                self._queue.append(_tagged(packer.withdraw(afi, gone)))
            if changed:
                self._queued_prefixes += len(changed)
                self._queue.append(_tagged(packer.announce(afi, group_by_attrs(changed))))

    def next_message(self, packer: Packer) -> Message | None:
        """The next UPDATE to send, or None when the peer is up to date."""
        while True:
            while self._queue:
                msg = next(self._queue[0], None)
                if msg is not None:
                    self._queued_prefixes -= msg[1]
                    return msg
                self._queue.pop(0)
            if self._resync or self.eor_due or any(self.pending[a] for a in FAMILIES):
                self._plan(packer)
                if self._queue:
                    continue
            return None

    def next_batch(self, packer: Packer, max_octets: int = BATCH_OCTETS) -> Batch | None:
        """UPDATEs until `max_octets` is reached or an End-of-RIB is due; None when idle."""
        updates: list[bytes] = []
        octets = prefixes = eor_afi = 0
        while octets < max_octets:
            msg = self.next_message(packer)
            if msg is None:
                break
            if msg[2]:  # End-of-RIB closes the batch
                eor_afi = msg[2]
                break
            updates.append(msg[0])
            octets += len(msg[0])
            prefixes += msg[1]
        if not updates and not eor_afi:
            return None
        return Batch(updates, octets, prefixes, eor_afi)
