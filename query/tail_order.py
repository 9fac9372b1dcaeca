"""Each line once and in time order for a live tail, whatever order and how many times the store shows it.

Why the store alone can't: a function's line reaches fnscope twice (the Telemetry API copy and the CloudWatch
copy share one ``event_id``), and a re-delivery is stored again; ``function_logs`` is a ReplacingMergeTree, so
until a background merge collapses them both copies are rows, often of separate inserts that one poll reads
together, and the later copy carries a newer ``ingested_at``. And lines arrive out of time order: each source
delivers in batches seconds after the fact, one function's batch after another's.

So a follower remembers every id it has sent or holds (bounded: the oldest by time are forgotten first), and
holds each new line back until as long after its time as most lines take to arrive (the 95th percentile of the
delivery lag of its recent lines: a second or two from the Telemetry API, longer through a buffering Firehose or
on a loaded machine), then sends what is due oldest first. Only lines arriving faster than that wait; a line whose
time is ahead of the store's clock is held from its arrival. A line arriving after a later one was sent (a long
invocation's early lines, delivered when it ends) is sent at once, marked ``late``: never dropped, never moved
silently.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

HOLD_MS = 3000  # until the lag of enough lines is known
MIN_HOLD_MS, MAX_HOLD_MS = 500, 60_000
LAG_SAMPLES = 512  # the recent lines whose delivery lag sets the hold
LAG_QUANTILE = 0.95
HOLD_MARGIN = 1.25  # the hold over that quantile
HOLD_FALL = 0.1  # ms the hold may fall per ms
MAX_REMEMBERED = 50_000  # ids kept per follower; past it the oldest by time are forgotten

Key = tuple[int, str]  # (time in ms, event id): the tail's order


@dataclass
class _Held:
    key: Key
    since_ms: int  # its time, or its arrival if that is earlier (a clock ahead of the store's)
    row: dict[str, Any]


@dataclass
class Sequencer:
    """The ids one follower has seen, the lines it holds back, and the last line it sent."""

    max_remembered: int = MAX_REMEMBERED
    lags: deque[int] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))
    _hold: int = HOLD_MS
    _hold_at: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # event id -> time ms, sent or held
    held: dict[str, _Held] = field(default_factory=dict)
    last: Key = (-1, "")

    def known(self, event_id: str) -> bool:
        return event_id in self.seen

    def sent(self, rows: list[tuple[Key, dict[str, Any]]]) -> None:
        """Lines already sent in order (the backlog): remembered, and the order continues after them."""
        for key, _row in rows:
            self.seen[key[1]] = key[0]
            self.last = max(self.last, key)
        self._forget()

    def hold(self, key: Key, arrived_ms: int, row: dict[str, Any]) -> None:
        """A line first read from the store at ``arrived_ms``; a copy of one already seen is ignored."""
        if key[1] in self.seen:
            return
        self.seen[key[1]] = key[0]
        self.held[key[1]] = _Held(key, min(key[0], arrived_ms), row)
        self.lags.append(max(0, arrived_ms - key[0]))

    def hold_ms(self, now_ms: int) -> int:
        """How long after its time a line is held: a margin over what most recent lines took to arrive. It rises at
        once with the lag, and falls slowly (a hold that shrank would let through lines that a moment ago would
        still have been waited for, and those still on their way would be late)."""
        if len(self.lags) < 20:
            return self._hold
        lag = sorted(self.lags)[int(LAG_QUANTILE * (len(self.lags) - 1))]
        target = min(MAX_HOLD_MS, max(MIN_HOLD_MS, int(lag * HOLD_MARGIN)))
        fallen = self._hold - int((now_ms - self._hold_at) * HOLD_FALL) if self._hold_at else target
        self._hold, self._hold_at = max(target, fallen), now_ms
        return self._hold

    def release(self, now_ms: int) -> list[tuple[dict[str, Any], bool]]:
        """The held lines due at ``now_ms``, oldest first, each with whether it is late (after one already sent)."""
        cutoff = now_ms - self.hold_ms(now_ms)
        due = sorted((h for h in self.held.values() if h.since_ms <= cutoff), key=lambda h: h.key)
        out = []
        for h in due:
            del self.held[h.key[1]]
            late = h.key < self.last
            if not late:
                self.last = h.key
            out.append((h.row, late))
        self._forget()
        return out

    def _forget(self) -> None:
        if len(self.seen) <= self.max_remembered:
            return
        # forget the oldest quarter by time (never one still held): amortised, not a sort per poll
        keep = self.max_remembered * 3 // 4
        by_age = sorted((ms, eid) for eid, ms in self.seen.items() if eid not in self.held)
        for _ms, eid in by_age[: max(0, len(self.seen) - keep)]:
            del self.seen[eid]
