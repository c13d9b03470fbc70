"""Demultiplexing received Control packets to sessions (RFC 5880 §6.8.6, RFC 5881 §5, RFC 5883).

Sans-I/O: given the bytes, the addresses and the received TTL, pick the session or count why the
packet was dropped. A packet naming us in Your Discriminator is matched by it; a first packet (Your
Discriminator zero) is matched by (local address, peer address, single-hop or multihop).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bfd.packet import DropReason, PacketError, decode
from bfd.session import Session

SINGLE_HOP_TTL = 255

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SessionKey:
    """What identifies a session to its user: the addresses and the hop mode."""

    peer: str
    local: str
    multihop: bool = False


@dataclass(slots=True)
class Binding(Generic[T]):
    key: SessionKey
    session: Session
    min_ttl: int
    owner: T


@dataclass
class Dispatcher(Generic[T]):
    by_discriminator: dict[int, Binding[T]] = field(default_factory=dict)
    by_key: dict[SessionKey, Binding[T]] = field(default_factory=dict)
    drops: Counter[str] = field(default_factory=Counter)

    def add(self, binding: Binding[T]) -> None:
        discr = binding.session.local_discriminator
        if binding.key in self.by_key or discr in self.by_discriminator:
            raise ValueError(f"session {binding.key} or discriminator {discr} already exists")
        self.by_key[binding.key] = binding
        self.by_discriminator[discr] = binding

    def remove(self, key: SessionKey) -> Binding[T] | None:
        binding = self.by_key.pop(key, None)
        if binding is not None:
            self.by_discriminator.pop(binding.session.local_discriminator, None)
        return binding

    def _drop(self, reason: DropReason) -> None:
        self.drops[reason.value] += 1

    def datagram_received(
        self, data: bytes, local: str, peer: str, multihop: bool, ttl: int | None, now: float
    ) -> Binding[T] | None:
        """Hand the packet to its session; returns that session's binding, or None if dropped."""
        try:
            packet = decode(data)
        except PacketError as exc:
            self._drop(exc.reason)
            return None
        if not multihop and ttl is not None and ttl != SINGLE_HOP_TTL:
            self._drop(DropReason.BAD_TTL)  # RFC 5881 §5: GTSM, the peer is one hop away
            return None
        if packet.your_discriminator:
            binding = self.by_discriminator.get(packet.your_discriminator)
            if binding is None or binding.key.peer != peer or binding.key.multihop != multihop:
                self._drop(DropReason.UNKNOWN_DISCRIMINATOR)
                return None
        else:
            binding = self.by_key.get(SessionKey(peer, local, multihop))
            if binding is None:
                self._drop(DropReason.NO_SESSION)
                return None
        if multihop and ttl is not None and ttl < binding.min_ttl:
            self._drop(DropReason.BAD_TTL)  # RFC 5883 §5: too many hops away
            return None
        binding.session.packet_received(packet, now)
        return binding
