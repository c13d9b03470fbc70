"""Lifeguard's suspicion timer, as memberlist's suspicion.go, on an injected clock.

A suspicion starts at `max_timeout` (or `min_timeout` when no confirmations are expected,
k < 1) and shrinks logarithmically towards `min_timeout` as up to k other members
independently report the same suspect: the more peers agree, the sooner we give up on it.
"""

from __future__ import annotations

import math


def suspicion_timeout(suspicion_mult: int, n: int, interval: float) -> float:
    """memberlist's minimum suspicion time: mult * max(1, log10(max(1, n))) * interval."""
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    # memberlist keeps three decimals of the scale (time.Duration arithmetic); so do we.
    return suspicion_mult * (math.floor(node_scale * 1000) / 1000) * interval


def remaining_suspicion_time(
    n: int, k: int, elapsed: float, min_timeout: float, max_timeout: float
) -> float:
    """Time left after `elapsed` with n of k confirmations; negative means overdue."""
    frac = math.log(n + 1.0) / math.log(k + 1.0)
    raw = max_timeout - frac * (max_timeout - min_timeout)
    timeout = math.floor(1000.0 * raw) / 1000.0
    timeout = max(timeout, min_timeout)
    return timeout - elapsed


class Suspicion:
    """One suspect's timer: `deadline` moves earlier with each new confirmation."""

    __slots__ = ("_confirmations", "deadline", "k", "max_timeout", "min_timeout", "n", "start")

    def __init__(
        self, from_: str, k: int, min_timeout: float, max_timeout: float, now: float
    ) -> None:
        self.k = k
        self.n = 0
        self.min_timeout = min_timeout
        self.max_timeout = max_timeout
        self.start = now
        # The accuser's own suspicion may be gossiped back to us: it never counts twice.
        self._confirmations = {from_}
        self.deadline = now + (max_timeout if k >= 1 else min_timeout)

    def confirm(self, from_: str, now: float) -> bool:
        """Count an independent accuser; True when it was new information (worth re-gossiping)."""
        if self.n >= self.k or from_ in self._confirmations:
            return False
        self._confirmations.add(from_)
        self.n += 1
        remaining = remaining_suspicion_time(
            self.n, self.k, now - self.start, self.min_timeout, self.max_timeout
        )
        self.deadline = now + max(0.0, remaining)
        return True
