"""Lifeguard's local health ("awareness"), as memberlist's awareness.go.

The score counts recent evidence that *we* are the slow one (probes failing without the nacks
that would show the network is fine, having to refute accusations). Probe intervals are scaled
by score + 1, so a struggling member accuses others less eagerly.
"""

from __future__ import annotations


class Awareness:
    """A score clamped to [0, max_multiplier - 1]."""

    __slots__ = ("_max", "score")

    def __init__(self, max_multiplier: int) -> None:
        self._max = max(1, max_multiplier)
        self.score = 0

    def apply_delta(self, delta: int) -> bool:
        """Add `delta` (clamped); True when the score changed."""
        before = self.score
        self.score = min(max(self.score + delta, 0), self._max - 1)
        return self.score != before

    def scale(self, timeout: float) -> float:
        return timeout * (self.score + 1)
