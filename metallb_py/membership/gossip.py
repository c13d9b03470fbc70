"""The transmit-limited broadcast queue, as memberlist's queue.go (TransmitLimitedQueue).

Each queued message is about one member and replaces any older message about it, so the queue
never holds two opinions of the same member. Messages sent the fewest times go first (newer
news spreads first), larger ones first within a tier (to fill a packet), and each is dropped
after retransmit_mult * ceil(log10(n + 1)) sends. The queue is capped: past `max_items` the
most-sent messages are dropped, as memberlist's Prune does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from metallb_py.membership.messages import Message


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """How many times a broadcast is sent in a cluster of n members."""
    return retransmit_mult * math.ceil(math.log10(n + 1))


@dataclass(slots=True)
class _Item:
    name: str
    message: Message
    size: int
    transmits: int
    id: int
    on_finished: Callable[[], None] | None


class BroadcastQueue:
    """Broadcasts keyed by member name, handed out in memberlist's priority order."""

    def __init__(self, retransmit_mult: int, max_items: int = 4096) -> None:
        self.retransmit_mult = retransmit_mult
        self.max_items = max_items
        self._items: dict[str, _Item] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(
        self,
        name: str,
        message: Message,
        size: int,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        """Queue `message` about member `name`, invalidating the one queued before it."""
        old = self._items.pop(name, None)
        if old is not None and old.on_finished is not None:
            old.on_finished()
        self._next_id += 1
        self._items[name] = _Item(name, message, size, 0, self._next_id, on_finished)
        if len(self._items) > self.max_items:
            self.prune(self.max_items)

    def prune(self, max_retain: int) -> None:
        """Keep the `max_retain` freshest messages."""
        if len(self._items) <= max_retain:
            return
        for item in self._ordered()[max_retain:]:
            del self._items[item.name]
            if item.on_finished is not None:
                item.on_finished()

    def _ordered(self) -> list[_Item]:
        return sorted(self._items.values(), key=lambda i: (i.transmits, -i.size, -i.id))

    def get(self, overhead: int, limit: int, num_nodes: int) -> list[Message]:
        """Messages whose sizes (each plus `overhead`) fit in `limit` bytes; counts a send each."""
        if not self._items:
            return []
        transmit_limit = retransmit_limit(self.retransmit_mult, num_nodes)
        used = 0
        out: list[Message] = []
        for item in self._ordered():
            free = limit - used - overhead
            if free <= 0:
                break
            if item.size > free:
                continue
            used += overhead + item.size
            out.append(item.message)
            item.transmits += 1
            if item.transmits >= transmit_limit:
                del self._items[item.name]
                if item.on_finished is not None:
                    item.on_finished()
        if not self._items:
            self._next_id = 0
        return out

    def pending(self) -> list[Message]:
        """Queued messages in send order (for tests and debugging)."""
        return [item.message for item in self._ordered()]
