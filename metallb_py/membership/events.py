"""What the membership core reports to its shell, one value per happening.

The shell drains them with `MembershipCore.next_event()`. Names follow memberlist's
EventDelegate (NotifyJoin/NotifyLeave/NotifyUpdate) plus what Lifeguard's workings expose,
so metrics and logs can show why a speaker was judged dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A member became live (new, or back from dead/left); also reported for ourselves at start."""

    name: str
    addr: bytes
    port: int
    meta: bytes


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """A member is gone: "dead" when others judged it failed, "left" when it said goodbye."""

    name: str
    reason: Literal["dead", "left"]


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    """A live member's metadata (or address, when reclaimed) changed."""

    name: str
    addr: bytes
    port: int
    meta: bytes


@dataclass(frozen=True, slots=True)
class MemberSuspected:
    """A live member is now suspect; `by` is the member whose probe failed."""

    name: str
    by: str


@dataclass(frozen=True, slots=True)
class SuspicionRefuted:
    """A suspect member proved alive with a higher incarnation (our own name: we refuted)."""

    name: str


@dataclass(frozen=True, slots=True)
class ProbeRTT:
    """Our direct ping of `name` was acked after `seconds` (relayed acks are not timed)."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class LocalHealthChanged:
    """Lifeguard's local health score changed (0 is healthy; timeouts scale by score + 1)."""

    score: int


@dataclass(frozen=True, slots=True)
class JoinFinished:
    """A join push-pull with `addr` ended; `ok` is False when the exchange failed."""

    addr: tuple[bytes, int]
    ok: bool


@dataclass(frozen=True, slots=True)
class LeaveComplete:
    """Our graceful-leave message has been sent enough times (or nobody is left to tell)."""


Event = (
    MemberJoined
    | MemberLeft
    | MemberUpdated
    | MemberSuspected
    | SuspicionRefuted
    | ProbeRTT
    | LocalHealthChanged
    | JoinFinished
    | LeaveComplete
)
