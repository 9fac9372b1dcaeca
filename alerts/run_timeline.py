"""How many of one function's runs are going at each instant, kept second by second, so that the peak over a window
reads a few cached seconds and the partial seconds at its ends instead of sweeping every run the window holds.

A run is a half-open span ``[begin, stop)``: a run ending at the instant another begins does not overlap it. Second
``s`` keeps the runs going as it begins (``entering``: begun before ``s``, not stopped before it) and the starts and
stops within it. The count at an instant ``t`` of that second is ``entering`` plus the starts at or before ``t`` less
the stops at or before ``t``; it only rises at a start, so a peak is the count at the window's first instant or at
one of the starts inside it.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field


@dataclass
class _Second:
    entering: int = 0
    starts: list[float] = field(default_factory=list)
    stops: list[float] = field(default_factory=list)
    peak: int | None = None  # the most at once within the whole second, once asked (until the second changes)

    def count_at(self, t: float) -> int:
        return self.entering + bisect_right(self.starts, t) - bisect_right(self.stops, t)

    def most(self, x: float, y: float) -> int:
        """The most runs at one instant in ``[x, y)``, both within this second."""
        later = self.starts[bisect_right(self.starts, x) : bisect_left(self.starts, y)]
        return max([self.count_at(x), *(self.count_at(t) for t in later)])


class RunTimeline:
    def __init__(self) -> None:
        self._seconds: dict[int, _Second] = {}
        self._last = -sys.maxsize  # the latest second holding anything
        self._forgotten = -sys.maxsize  # the seconds before this one were dropped

    def add(self, begin: float, stop: float) -> None:
        self._place(begin, stop, 1)

    def remove(self, begin: float, stop: float) -> None:
        """Take back a span given to ``add`` (its parts in forgotten seconds are gone already)."""
        self._place(begin, stop, -1)

    def peak(self, x: float, y: float) -> int:
        """The most runs going at one instant in ``[x, y)`` (``y`` may be infinite)."""
        if not y > x:
            return 0
        first = math.floor(x)
        best = self._most(first, x, min(y, first + 1))
        last = self._last if y == math.inf else min(self._last, math.ceil(y) - 1)
        for s in range(first + 1, last + 1):
            second = self._seconds.get(s)
            if second is None:
                continue
            if s + 1 <= y:  # a whole second of the window
                if second.peak is None:
                    second.peak = second.most(s, s + 1)
                best = max(best, second.peak)
            else:
                best = max(best, second.most(s, y))
        return best

    def forget_before(self, lo: int) -> None:
        """Drop the seconds before ``lo``: no window asked of this timeline starts before it any more."""
        for s in [s for s in self._seconds if s < lo]:
            del self._seconds[s]
        self._forgotten = max(self._forgotten, lo)

    def _most(self, s: int, x: float, y: float) -> int:
        second = self._seconds.get(s)
        return second.most(x, y) if second is not None else 0

    def _place(self, begin: float, stop: float, sign: int) -> None:
        if not stop > begin:
            return
        first, last = math.floor(begin), math.floor(stop)
        for s in range(max(first, self._forgotten), last + 1):
            second = self._seconds.get(s)
            if second is None:
                second = self._seconds[s] = _Second()
            second.peak = None
            if s == first:
                _edit(second.starts, begin, sign)
            else:
                second.entering += sign
            if s == last:
                _edit(second.stops, stop, sign)
        self._last = max(self._last, last)


def _edit(times: list[float], t: float, sign: int) -> None:
    if sign > 0:
        insort(times, t)
    else:
        times.remove(t)
