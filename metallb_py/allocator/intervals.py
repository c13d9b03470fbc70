"""A set of integers stored as sorted, disjoint, inclusive intervals.

Free addresses of a pool live here so that taking the lowest free address, taking a given one
and giving one back cost a binary search, never a walk over the pool: a /8 or a /64 is one
interval until it fragments.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence


class IntervalSet:
    """Disjoint inclusive intervals `[start, end]`, kept sorted; adjacent ones are merged."""

    __slots__ = ("_ends", "_size", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._size = 0
        for start, end in sorted(ranges):
            if end < start:
                raise ValueError(f"empty interval [{start}, {end}]")
            if self._ends and start <= self._ends[-1] + 1:
                if end > self._ends[-1]:
                    self._size += end - self._ends[-1]
                    self._ends[-1] = end
                continue
            self._starts.append(start)
            self._ends.append(end)
            self._size += end - start + 1

    @classmethod
    def from_ranges_minus(
        cls, ranges: Iterable[tuple[int, int]], taken: Sequence[int]
    ) -> IntervalSet:
        """`ranges` without the points in `taken` (sorted ascending), in one linear pass."""
        pieces: list[tuple[int, int]] = []
        merged = IntervalSet(ranges)
        j = 0
        for start, end in merged.intervals():
            while j < len(taken) and taken[j] < start:
                j += 1
            cursor = start
            while j < len(taken) and taken[j] <= end:
                point = taken[j]
                if point > cursor:
                    pieces.append((cursor, point - 1))
                cursor = max(cursor, point + 1)
                j += 1
            if cursor <= end:
                pieces.append((cursor, end))
        out = cls()
        out._starts = [s for s, _ in pieces]
        out._ends = [e for _, e in pieces]
        out._size = sum(e - s + 1 for s, e in pieces)
        return out

    @property
    def size(self) -> int:
        """How many integers the set holds (may exceed sys.maxsize for IPv6)."""
        return self._size

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        i = bisect_right(self._starts, value) - 1
        return i >= 0 and self._ends[i] >= value

    def intervals(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._ends, strict=True)

    def interval_count(self) -> int:
        return len(self._starts)

    def first(self) -> int | None:
        return self._starts[0] if self._starts else None

    def interval_at(self, index: int) -> tuple[int, int]:
        return self._starts[index], self._ends[index]

    def drop_interval(self, index: int) -> None:
        """Forget a whole interval (used to prune addresses that can never be handed out)."""
        self._size -= self._ends[index] - self._starts[index] + 1
        del self._starts[index]
        del self._ends[index]

    def discard(self, value: int) -> bool:
        """Remove `value`; False if it was not there."""
        i = bisect_right(self._starts, value) - 1
        if i < 0 or self._ends[i] < value:
            return False
        start, end = self._starts[i], self._ends[i]
        if start == end:
            del self._starts[i]
            del self._ends[i]
        elif value == start:
            self._starts[i] = value + 1
        elif value == end:
            self._ends[i] = value - 1
        else:
            self._ends[i] = value - 1
            self._starts.insert(i + 1, value + 1)
            self._ends.insert(i + 1, end)
        self._size -= 1
        return True

    def add(self, value: int) -> bool:
        """Insert `value`, merging with neighbours; False if it was already there."""
        i = bisect_right(self._starts, value) - 1
        if i >= 0 and self._ends[i] >= value:
            return False
        join_left = i >= 0 and self._ends[i] == value - 1
        join_right = i + 1 < len(self._starts) and self._starts[i + 1] == value + 1
        if join_left and join_right:
            self._ends[i] = self._ends[i + 1]
            del self._starts[i + 1]
            del self._ends[i + 1]
        elif join_left:
            self._ends[i] = value
        elif join_right:
            self._starts[i + 1] = value
        else:
            self._starts.insert(i + 1, value)
            self._ends.insert(i + 1, value)
        self._size += 1
        return True
