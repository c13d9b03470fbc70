"""Exponential backoff with full jitter, so that many clients recovering from the same outage do
not hammer the API server in lock step."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5  # each delay is drawn from [d * (1 - jitter), d]
    rng: random.Random = field(default_factory=random.Random)
    _current: float = 0.0

    def next(self) -> float:
        """The next delay to wait, growing geometrically up to `maximum`."""
        self._current = (
            self.initial if self._current == 0 else min(self._current * self.factor, self.maximum)
        )
        low = self._current * (1 - self.jitter)
        return self.rng.uniform(low, self._current)

    def reset(self) -> None:
        self._current = 0.0

    @property
    def failing(self) -> bool:
        return self._current > 0
