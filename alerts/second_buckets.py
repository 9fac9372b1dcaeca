"""Per-second buckets of event time that keep each window a rule reads of them up to date as they change.

Every pass, each rule reads its window (the last minute, five, ten) of every function a batch touched. Summing a
window's seconds again, or merging its durations to find a p99, cost a few hundred dictionary reads a rule and a
function, over and over, for windows that moved by half a second. Here each window asked for is kept: what is added
inside it is added to it, and when it moves on, the seconds it left are taken out of it.

A window is named by its length (its key) and starts at a second ``lo``; it holds every second from ``lo`` on, the
future ones included, as the rules always read. A window asked to start earlier than it does, or not asked while
more seconds passed than the buckets hold, is rebuilt from the buckets; one whose start is forgotten is dropped.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, TypeVar

from sortedcontainers import SortedList

V = TypeVar("V")


class _Buckets(dict[int, V]):
    __slots__ = ("_windows", "_lowest")

    def __init__(self) -> None:
        super().__init__()
        self._windows: dict[float, list[Any]] = {}  # key -> [lo, the window's figure]
        self._lowest: float = math.inf  # no second held is earlier

    def _bucket(self, second: int, empty: V) -> V:
        self._lowest = min(self._lowest, second)
        return self.setdefault(second, empty)

    def _window(self, lo: int, key: float) -> list[Any]:
        """The window ``key``, its start not moved on to ``lo`` yet (or rebuilt from ``lo``)."""
        window = self._windows.get(key)
        if window is None or lo < window[0] or lo - window[0] > len(self):
            window = self._windows[key] = [lo, self._figure_since(lo)]
        return window

    def _figure_since(self, lo: int) -> Any:
        raise NotImplementedError

    def forget_before(self, lo: int) -> None:
        """Drop the seconds before ``lo`` (and the windows that start before it)."""
        if self._lowest >= lo:
            return
        if lo - self._lowest <= len(self):  # the usual case: the second or two since the last time
            for second in range(int(self._lowest), lo):
                self.pop(second, None)
        else:
            for second in [s for s in self if s < lo]:
                del self[second]
        self._lowest = lo
        self._windows = {key: w for key, w in self._windows.items() if w[0] >= lo}


class SecondCounts(_Buckets[int]):
    """Counts by second, with a running total for each window asked of them (``total_since``)."""

    __slots__ = ()

    def add(self, second: int, n: int = 1) -> None:
        self[second] = self._bucket(second, 0) + n
        for window in self._windows.values():
            if second >= window[0]:
                window[1] += n

    def total_since(self, lo: int, key: float) -> int:
        """The count of every second from ``lo`` on."""
        window = self._window(lo, key)
        for second in range(window[0], lo):
            window[1] -= self.get(second, 0)
        window[0] = lo
        return int(window[1])

    def _figure_since(self, lo: int) -> int:
        return sum(n for s, n in self.items() if s >= lo)


class SecondDurations(_Buckets["array[float]"]):
    """Durations by second (8 bytes each), with the sorted values of each window asked of them (``sorted_since``):
    a SortedList, whose inserts and removals cost a logarithm of the window, where a sorted array's cost the
    window's length and so grew with the square of a function's call rate."""

    __slots__ = ()

    def add(self, second: int, value: float) -> None:
        values = self.get(second)
        (self._bucket(second, array("d")) if values is None else values).append(value)
        for window in self._windows.values():
            if second >= window[0]:
                window[1].add(value)

    def sorted_since(self, lo: int, key: float) -> SortedList:
        """Every duration from second ``lo`` on, in ascending order (the caller must not change it)."""
        window = self._window(lo, key)
        ordered = window[1]
        for second in range(window[0], lo):
            for value in self.get(second, ()):
                ordered.remove(value)
        window[0] = lo
        return ordered

    def _figure_since(self, lo: int) -> SortedList:
        return SortedList(v for s, values in self.items() if s >= lo for v in values)
