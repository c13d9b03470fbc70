"""Typed events a BFD session hands to its owner (sans-I/O, like aioquic's quic/events.py)."""

from __future__ import annotations

from dataclasses import dataclass

from bfd.packet import Diag, State


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The local session state changed; `diag` is the local diagnostic that explains why."""

    old: State
    new: State
    diag: Diag
    remote_state: State
    remote_diag: Diag
    at: float


@dataclass(frozen=True, slots=True)
class PollCompleted:
    """The peer acknowledged our new timer parameters (Final received); they now apply."""

    desired_min_tx_us: int
    required_min_rx_us: int
    at: float


Event = StateChanged | PollCompleted
