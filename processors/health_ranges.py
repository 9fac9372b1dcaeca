"""Which health buckets a batch of events can change: seconds for concurrency (invocations and the
initialisations before them), minutes for everything else.

Pure bookkeeping over the events just written, so the processor recomputes only what a batch touched,
whether the facts are live, minutes late, or a re-delivered copy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from fnscope.events import ApiAccess, AuditEvent, Event, Invocation

# Two paths may state one fact at slightly different times (the Telemetry API's report comes 1 ms after the
# CloudWatch REPORT line); a bucket this close to a fact's time is recomputed too, so whichever copy is
# earliest decides the bucket however the copies arrive.
JITTER_S = 2

# An invocation (with its init) longer than this changes the peaks of every second it ran through when its report
# comes: those seconds are marked ``spanned``, rebuilt on a slower clock than the seconds around its end (see
# ``health_aggregates.SPANNED_EVERY_S``).
LONG_SPAN_S = 10

# Facts that change a request's minute aggregates (counts, outcome, durations).
_MINUTE_KINDS = frozenset({"report", "timeout", "oom", "fault", "runtime_done"})


def _epoch_s(value: datetime) -> int:
    return int(value.timestamp() // 1)


def merge(ranges: Iterable[tuple[int, int]], gap: int = 0) -> list[tuple[int, int]]:
    """Union of closed integer ranges; ranges at most ``gap`` apart are joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + gap + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@dataclass
class TenantDirt:
    """Closed ranges of epoch seconds (concurrency) and epoch minutes (aggregates) one tenant's batch touched.
    ``spanned`` holds the seconds long invocations ran through, short of their last moments (``LONG_SPAN_S``)."""

    seconds: list[tuple[int, int]] = field(default_factory=list)
    minutes: list[tuple[int, int]] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    throttle_minutes: list[tuple[int, int]] = field(default_factory=list)
    throttle_functions: set[str] = field(default_factory=set)
    spanned: list[tuple[int, int]] = field(default_factory=list)

    def union(self, other: TenantDirt) -> TenantDirt:
        return TenantDirt(
            self.seconds + other.seconds,
            self.minutes + other.minutes,
            self.functions | other.functions,
            self.throttle_minutes + other.throttle_minutes,
            self.throttle_functions | other.throttle_functions,
            self.spanned + other.spanned,
        ).merged()

    def merged(self) -> TenantDirt:
        # Seconds up to a minute apart are recomputed in one sweep: a sweep's fixed cost (five statements) is more
        # than sweeping the seconds between.
        return TenantDirt(
            merge(self.seconds, gap=60),
            merge(self.minutes),
            self.functions,
            merge(self.throttle_minutes),
            self.throttle_functions,
            merge(self.spanned, gap=60),
        )


def dirty_ranges(events: Iterable[Event]) -> dict[str, TenantDirt]:
    """Per tenant, the buckets the events can change."""
    dirt: dict[str, TenantDirt] = defaultdict(TenantDirt)
    for event in events:
        if isinstance(event, Invocation):
            _invocation(dirt[event.tenant], event)
        elif isinstance(event, ApiAccess) and event.throttled and event.function:
            _throttle(dirt[event.tenant], event.function, event.time)
        elif isinstance(event, AuditEvent) and event.error_code == "TooManyRequestsException" and event.function:
            _throttle(dirt[event.tenant], event.function, event.time)
    return {
        tenant: d.merged() for tenant, d in dirt.items() if d.seconds or d.minutes or d.throttle_minutes or d.spanned
    }


def _invocation(d: TenantDirt, inv: Invocation) -> None:
    end = _epoch_s(inv.time)
    if inv.kind == "report":
        start = _epoch_s(inv.start_time) if inv.start_time is not None else end
        # an Init Duration: the environment was initialising just before the invocation started
        init_s = math.ceil((inv.init_duration_ms or 0) / 1000)
        first = min(start, end) - init_s - JITTER_S
        if end - (first + JITTER_S) > LONG_SPAN_S:
            d.spanned.append((first, end - JITTER_S - 1))
            first = end - JITTER_S
        d.seconds.append((first, end + JITTER_S))
    elif inv.kind == "init_report":
        init_s = math.ceil((inv.init_duration_ms or 0) / 1000)
        d.seconds.append((end - init_s - JITTER_S, end + JITTER_S))
    elif inv.kind == "start":
        start = _epoch_s(inv.start_time or inv.time)
        d.seconds.append((start - JITTER_S, start + JITTER_S))
    if inv.kind in _MINUTE_KINDS:
        d.minutes.append(((end - JITTER_S) // 60, (end + JITTER_S) // 60))
        d.functions.add(inv.function)


def _throttle(d: TenantDirt, function: str, time: datetime) -> None:
    minute = _epoch_s(time) // 60
    d.throttle_minutes.append((minute, minute))
    d.throttle_functions.add(function)
