"""Incremental per-function state, fed with every stored batch: per-second counts, durations and running
invocations, so a rule's value over its window is a sum over a few dozen buckets, never a query.

Event time decides the bucket; re-delivered copies (same deterministic ``event_id``) count once.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from fnscope.alerts.rules import Runaway
from fnscope.canary import Figures, Policy, routed_version
from fnscope.events import ApiAccess, AuditEvent, Event, Invocation
from fnscope.timeparse import iso_utc

FAILED = frozenset({"error", "failure", "timeout", "oom"})
MAX_RUN_S = 15 * 60 + 10  # Lambda's longest invocation plus init: a start without its report is over by then
HISTORY_MINUTES = 62  # per-minute figures kept for the runaway rule's baseline (an hour, and the current minute)
SEAL_AFTER_S = 5.0  # a minute's peak concurrency is taken this long after it ended (reports arrive a little late)

SeriesKey = tuple[str, str]  # (tenant, function)


def _buckets() -> dict[int, int]:
    return defaultdict(int)


@dataclass
class VersionState:
    """One version's counts per second, for the canary rule (new version against the one it replaces)."""

    invocations: dict[int, int] = field(default_factory=_buckets)
    errors: dict[int, int] = field(default_factory=_buckets)
    timeouts: dict[int, int] = field(default_factory=_buckets)
    throttles: dict[int, int] = field(default_factory=_buckets)
    durations: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def all_buckets(self) -> tuple[dict[int, Any], ...]:
        return self.invocations, self.errors, self.timeouts, self.throttles, self.durations


@dataclass
class FunctionState:
    account: str = ""
    throttles: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    invocations: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    timeouts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    durations: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    # request id -> [start, end or None while still running], epoch seconds
    runs: dict[str, list[float | None]] = field(default_factory=dict)
    # request id (else event id) -> second it was seen: runs that timed out, and those whose version counted it
    timed_out: dict[str, int] = field(default_factory=dict)
    versions: dict[str, VersionState] = field(default_factory=lambda: defaultdict(VersionState))
    version_timed_out: dict[str, int] = field(default_factory=dict)
    # request id -> (version, second) of its report: a version's timeout counts in its report's second, as its
    # invocation does, so a version's timeouts in a window never outnumber its invocations
    run_versions: dict[str, tuple[str, int]] = field(default_factory=dict)
    # request id -> seconds its environment initialised just before it started (a REPORT's Init Duration)
    inits: dict[str, float] = field(default_factory=dict)
    gb_seconds: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    # per minute, for the runaway rule's baseline: invocations, GB-seconds, and peak concurrency once it ended
    minute_invocations: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    minute_gb_seconds: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    minute_peaks: dict[int, int] = field(default_factory=dict)
    first_minute: int | None = None  # the first minute this process saw the function called
    sealed_through: int = -1  # the last minute whose peak is in minute_peaks


@dataclass
class AuditHit:
    labels: dict[str, str]
    seconds: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    last: dict[str, str] = field(default_factory=dict)


def _epoch(event: Event) -> float:
    return event.time.timestamp()


def _routed_version(event: AuditEvent) -> str:
    """The version a throttled Invoke was routed to, where its CloudTrail record says (``routed_version``)."""
    try:
        record = json.loads(event.raw)
        extra, params = record.get("additionalEventData") or {}, record.get("requestParameters") or {}
        return routed_version(str(extra.get("functionVersion") or ""), str(params.get("functionName") or ""))
    except (ValueError, AttributeError):
        return ""


def _reserved(event: AuditEvent) -> int | None:
    """The limit a successful Put/DeleteFunctionConcurrency sets (-1: back on the account's pool)."""
    if event.error_code or not event.function:
        return None
    if event.action.startswith("DeleteFunctionConcurrency"):
        return -1
    if not event.action.startswith("PutFunctionConcurrency"):
        return None
    try:
        value = json.loads(event.raw).get("requestParameters", {}).get("reservedConcurrentExecutions")
    except (ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int | float) else None


def _p99(ordered: list[float]) -> float | None:
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] if ordered else None


class Signals:
    """Everything the rules measure, for recent event time only (older buckets are pruned)."""

    def __init__(
        self, keep_s: float, account_limit: int, audit_max_age_s: float = 86_400.0, watch_minutes: bool = True
    ) -> None:
        self.keep_s = keep_s
        # the per-minute history only a runaway rule reads: an hour of it is some 8 KB a function, and its sealing
        # a concurrency sweep a minute per function, so it is kept only when such a rule is on
        self.watch_minutes = watch_minutes
        self.audit_max_age_s = audit_max_age_s
        self.account_limit = account_limit
        self.functions: dict[SeriesKey, FunctionState] = defaultdict(FunctionState)
        self.reserved: dict[tuple[str, str], tuple[float, int]] = {}  # (tenant, function) -> (changed at, limit)
        # (tenant, function) -> who set the newest limit, when, from where (not known after a restart)
        self.limit_changes: dict[tuple[str, str], dict[str, str]] = {}
        self.started: float | None = None  # when this process began watching: the runaway baseline's start
        self.audit_events: list[AuditEvent] = []  # the last batch's, for audit rules
        self._seen: dict[str, float] = {}
        self._horizon = 0.0

    # --- feeding ---------------------------------------------------------------------------------------

    def observe(self, events: Iterable[Event], now: float) -> set[SeriesKey]:
        """Add a stored batch; returns the functions it touched."""
        touched: set[SeriesKey] = set()
        self.audit_events = []
        if self.started is None:
            self.started = now
        horizon = self._horizon = now - self.keep_s
        for event in events:
            if event.event_id in self._seen:
                continue
            t = _epoch(event)
            if isinstance(event, AuditEvent):
                self._seen[event.event_id] = t
                self._audit(event, touched)
                # CloudTrail delivers minutes late: audit rules count arrivals, and only a backfill is too old
                if t >= now - self.audit_max_age_s:
                    self.audit_events.append(event)
            elif t < horizon:
                continue
            elif isinstance(event, Invocation):
                self._seen[event.event_id] = t
                self._invocation(event, t, touched)
            elif isinstance(event, ApiAccess) and event.throttled and event.function:
                self._seen[event.event_id] = t
                self.functions[(event.tenant, event.function)].throttles["apigateway"][int(t)] += 1
                touched.add((event.tenant, event.function))
        return touched

    def _audit(self, event: AuditEvent, touched: set[SeriesKey]) -> None:
        key = (event.tenant, event.function)
        if event.error_code == "TooManyRequestsException" and event.function:
            t = _epoch(event)
            if t >= self._horizon:
                self.functions[key].throttles["cloudtrail"][int(t)] += 1
                if version := _routed_version(event):
                    self.functions[key].versions[version].throttles[int(t)] += 1
                touched.add(key)
        reserved = _reserved(event)
        if reserved is not None:
            t = _epoch(event)
            if key not in self.reserved or self.reserved[key][0] <= t:  # the newest change wins, whatever the order
                self.reserved[key] = (t, reserved)
                self.limit_changes[key] = {
                    "at": iso_utc(event.time),
                    "by": event.principal_arn or event.principal_name or event.principal_type,
                    "source_ip": event.source_ip,
                    "user_agent": event.user_agent,
                    "action": event.action,
                }
                touched.add(key)

    def _invocation(self, event: Invocation, t: float, touched: set[SeriesKey]) -> None:
        key = (event.tenant, event.function)
        fn = self.functions[key]
        fn.account = event.account or fn.account
        touched.add(key)
        run_id = event.request_id or event.event_id
        if event.kind == "start" or (event.kind == "report" and event.request_id):
            run = fn.runs.setdefault(run_id, [math.inf, None])
            begin = (event.start_time or event.time).timestamp()
            run[0] = min(run[0] or math.inf, begin)
            if event.kind == "report":
                run[1] = t if run[1] is None else min(run[1], t)
        if event.status == "throttled":
            fn.throttles["invocation"][int(t)] += 1
        timed_out = event.status == "timeout" or event.kind == "timeout" or event.error_type == "Sandbox.Timedout"
        if timed_out and run_id not in fn.timed_out:
            fn.timed_out[run_id] = int(t)
            fn.timeouts[int(t)] += 1
        if event.kind == "report":
            second = int(t)
            fn.invocations[second] += 1
            if self.watch_minutes:
                fn.minute_invocations[second // 60] += 1
                if fn.first_minute is None or second // 60 < fn.first_minute:
                    fn.first_minute = second // 60
            if event.billed_duration_ms and event.memory_size_mb:
                gb_s = event.billed_duration_ms / 1000 * event.memory_size_mb / 1024
                fn.gb_seconds[second] += gb_s
                if self.watch_minutes:
                    fn.minute_gb_seconds[second // 60] += gb_s
            if event.init_duration_ms and event.request_id:
                fn.inits[run_id] = event.init_duration_ms / 1000
            if event.status in FAILED:
                fn.errors[second] += 1
            if event.duration_ms is not None:
                fn.durations[second].append(event.duration_ms)
            if event.version:
                fn.run_versions[run_id] = (event.version, second)
                ver = fn.versions[event.version]
                ver.invocations[second] += 1
                ver.errors[second] += event.status in FAILED
                if event.duration_ms is not None:
                    ver.durations[second].append(event.duration_ms)
        # a timeout fact and its report may come in any order: the version counts it once both are known
        version, second = fn.run_versions.get(run_id, ("", 0))
        if version and run_id in fn.timed_out and run_id not in fn.version_timed_out:
            fn.version_timed_out[run_id] = second
            fn.versions[version].timeouts[second] += 1

    # --- measuring -------------------------------------------------------------------------------------

    def limit_of(self, tenant: str, function: str) -> tuple[int, str]:
        reserved = self.reserved.get((tenant, function))
        if reserved is not None and reserved[1] >= 0:
            return reserved[1], "reserved"
        taken = sum(v for (t, _f), (_at, v) in self.reserved.items() if t == tenant and v >= 0)
        return max(0, self.account_limit - taken), "account"

    def peak_concurrency(self, fn: FunctionState, since: float, now: float, until: float | None = None) -> int:
        """Most invocations running, and environments initialising before them (as Lambda counts concurrency),
        at one instant in [since, until or now): a sweep over the runs that overlap it."""
        hi = math.inf if until is None else until
        edges: list[tuple[float, int]] = []

        def span(begin: float, stop: float) -> None:
            if stop > since and begin < hi and stop > begin:
                edges.append((max(begin, since), 1))
                edges.append((min(stop, hi), -1))

        for rid, (begin, end) in fn.runs.items():
            if begin is None or begin == math.inf:
                continue
            span(begin, end if end is not None else min(now, begin + MAX_RUN_S))
            if rid in fn.inits:
                span(begin - fn.inits[rid], begin)
        edges.sort()  # at one instant an end (-1) sorts before a start (+1): back-to-back runs don't overlap
        running = peak = 0
        for _, delta in edges:
            running += delta
            peak = max(peak, running)
        return peak

    def disabled(self, key: SeriesKey) -> dict[str, Any] | None:
        """Who disabled the function (reserved concurrency 0), when and from where; None while it is not."""
        reserved = self.reserved.get(key)
        if reserved is None or reserved[1] != 0:
            return None
        return {"value": 1.0, **self.limit_changes.get(key, {})}

    def runaway(self, key: SeriesKey, window_s: float, now: float, policy: Runaway) -> dict[str, Any]:
        """The function's figures over the window against its baseline (the median of its previous minutes, each
        minute this process watched; a minute without calls is 0) and its last hour against its budget."""
        fn = self.functions.get(key)
        if fn is None:
            return {}
        lo = int(now - window_s)
        current = {
            "invocations": sum(n for s, n in fn.invocations.items() if s >= lo) * 60 / window_s,
            "concurrency": self.peak_concurrency(fn, now - window_s, now),
            "gb_seconds": sum(v for s, v in fn.gb_seconds.items() if s >= lo) * 60 / window_s,
        }
        last_minute = int(now - window_s) // 60 - 1  # the last whole minute before the window
        # Minutes count from when this process watched the function: after its start, from the function's first
        # call (a function deployed or first called later has no quiet hour before it), and within what is kept.
        first_watched = max(
            -(-int(self.started if self.started is not None else now) // 60),
            fn.first_minute if fn.first_minute is not None else last_minute + 1,
            int(now) // 60 - HISTORY_MINUTES + 1,
        )
        minutes = [m for m in range(last_minute - policy.baseline_minutes + 1, last_minute + 1) if m >= first_watched]
        per_minute = {
            "invocations": fn.minute_invocations,
            "concurrency": fn.minute_peaks,
            "gb_seconds": fn.minute_gb_seconds,
        }
        floors = {
            "invocations": policy.floor_invocations_per_minute,
            "concurrency": policy.floor_concurrency,
            "gb_seconds": policy.floor_gb_seconds_per_minute,
        }
        units = {"invocations": "invocations a minute", "concurrency": "concurrent", "gb_seconds": "GB-s a minute"}
        reasons: list[str] = []
        baseline: dict[str, float] = {}
        if len(minutes) >= policy.min_baseline_minutes:
            for name, figures in per_minute.items():
                baseline[name] = statistics.median(figures.get(m, 0) for m in minutes)
                if current[name] >= floors[name] and current[name] >= policy.factor * baseline[name]:
                    reasons.append(f"{current[name]:,.0f} {units[name]} against a median of {baseline[name]:,.0f}")
        hour_lo = int(now) // 60 - 59  # the current minute and the 59 before it
        hour = {
            "invocations": sum(n for m, n in fn.minute_invocations.items() if m >= hour_lo),
            "gb_seconds": sum(v for m, v in fn.minute_gb_seconds.items() if m >= hour_lo),
        }
        budget = policy.budget_of(key[1])
        for name, limit in (("invocations", budget.invocations_per_hour), ("gb_seconds", budget.gb_seconds_per_hour)):
            if limit and hour[name] > limit:
                label = "invocations" if name == "invocations" else "GB-s"
                reasons.append(f"{hour[name]:,.0f} {label} in the last hour, over its budget of {limit:,.0f}")
        return {
            "value": 1.0 if reasons else 0.0,
            "reasons": "; ".join(reasons),
            "current": current,
            "baseline": baseline,
            "last_hour": hour,
            "baseline_minutes": len(minutes),
        }

    def measure(self, kind: str, key: SeriesKey, window_s: float, now: float) -> dict[str, Any]:
        """The values a rule of this kind looks at, for one function over the last ``window_s`` seconds."""
        fn = self.functions.get(key)
        if fn is None:
            return {}
        since = now - window_s
        lo = int(since)

        def total(buckets: dict[int, int]) -> int:
            return sum(n for s, n in buckets.items() if s >= lo)

        if kind == "throttles":
            by_source = {src: total(b) for src, b in fn.throttles.items()}
            by_source = {src: n for src, n in by_source.items() if n}
            return {"value": max(by_source.values(), default=0), "throttles_by_source": by_source}
        if kind == "concurrency":
            peak = self.peak_concurrency(fn, since, now)
            limit, source = self.limit_of(*key)
            return {"value": peak / limit if limit else 0.0, "peak": peak, "limit": limit, "limit_source": source}
        invocations = total(fn.invocations)
        if kind == "error_rate":
            errors = total(fn.errors)
            return {"value": errors / invocations if invocations else 0.0, "errors": errors, "invocations": invocations}
        if kind == "timeouts":
            return {"value": total(fn.timeouts), "invocations": invocations}
        if kind == "p99_duration":
            durations = sorted(d for s, ds in fn.durations.items() if s >= lo for d in ds)
            return {"value": _p99(durations) or 0.0, "invocations": invocations}
        raise ValueError(f"unknown rule kind {kind}")

    def canary_version(self, key: SeriesKey, window_s: float, now: float) -> str:
        """The newest numbered version of a function that ran in the window beside another one, or ''."""
        fn = self.functions.get(key)
        if fn is None:
            return ""
        lo = int(now - window_s)
        running = [v for v, st in fn.versions.items() if v.isdigit() and any(s >= lo for s in st.invocations)]
        return max(running, key=int) if len(running) > 1 else ""

    def canary_figures(
        self, key: SeriesKey, version: str, window_s: float, now: float, policy: Policy
    ) -> tuple[Figures, Figures | None]:
        """The new version's figures and its baseline's (the busiest other version) over the window, the new
        version's calls slower than the baseline's p99 allowance counted."""
        fn = self.functions.get(key)
        lo = int(now - window_s)

        def total(buckets: dict[int, int]) -> int:
            return sum(n for s, n in buckets.items() if s >= lo)

        durations: dict[str, list[float]] = {}
        figures: dict[str, Figures] = {}
        for v, st in fn.versions.items() if fn else ():
            durations[v] = sorted(d for s, ds in st.durations.items() if s >= lo for d in ds)
            figures[v] = Figures(
                v, total(st.invocations), total(st.errors), total(st.timeouts), total(st.throttles), _p99(durations[v])
            )
        new = figures.get(version, Figures(version))
        others = [f for v, f in sorted(figures.items()) if v != version and f.invocations]
        base = max(others, key=lambda f: f.invocations, default=None)
        if base is not None and base.p99_ms is not None:
            threshold = policy.slow_threshold_ms(base.p99_ms)
            mine = durations.get(version, [])
            new = replace(new, slow=sum(d > threshold for d in mine), timed=len(mine))
        return new, base

    # --- forgetting ------------------------------------------------------------------------------------

    def _seal_minutes(self, fn: FunctionState, now: float) -> None:
        """Take the peak concurrency of each minute that ended (while its runs are still kept)."""
        last = int(now - SEAL_AFTER_S) // 60 - 1
        first = max(int(now - self.keep_s) // 60 + 1, last - HISTORY_MINUTES, fn.sealed_through + 1)
        for minute in range(first, last + 1):  # each minute once: a tick seals at most the one that just ended
            fn.minute_peaks[minute] = self.peak_concurrency(fn, minute * 60, now, minute * 60 + 60)
        fn.sealed_through = max(fn.sealed_through, last)

    def prune(self, now: float) -> None:
        lo = int(now - self.keep_s)
        oldest_minute = int(now) // 60 - HISTORY_MINUTES
        for key in list(self.functions):
            fn = self.functions[key]
            if self.watch_minutes:
                self._seal_minutes(fn, now)
            for minutes in (fn.minute_invocations, fn.minute_gb_seconds, fn.minute_peaks):
                for m in [m for m in minutes if m < oldest_minute]:
                    del minutes[m]
            for buckets in (
                *fn.throttles.values(), fn.invocations, fn.errors, fn.timeouts, fn.durations, fn.gb_seconds
            ):  # fmt: skip
                for s in [s for s in buckets if s < lo]:
                    del buckets[s]
            for version, st in list(fn.versions.items()):
                for buckets in st.all_buckets():
                    for s in [s for s in buckets if s < lo]:
                        del buckets[s]
                if not st.invocations and not st.throttles:
                    del fn.versions[version]
            for rid in [r for r, (b, e) in fn.runs.items() if (e if e is not None else (b or 0) + MAX_RUN_S) < lo]:
                del fn.runs[rid]
                fn.inits.pop(rid, None)
                fn.timed_out.pop(rid, None)
                fn.version_timed_out.pop(rid, None)
                fn.run_versions.pop(rid, None)
            # what no run holds (a report without a request id, a timeout fact whose run never started here)
            # goes with its second
            for facts in (fn.timed_out, fn.version_timed_out):
                for rid in [r for r, s in facts.items() if s < lo and r not in fn.runs]:
                    del facts[rid]
            for rid in [r for r, (_v, s) in fn.run_versions.items() if s < lo and r not in fn.runs]:
                del fn.run_versions[rid]
            quiet = not fn.runs and not fn.invocations and not any(fn.throttles.values()) and not fn.timeouts
            if (
                quiet and not fn.minute_invocations and not any(fn.minute_peaks.values())
            ):  # an hour's baseline outlives a pause
                del self.functions[key]
        for eid in [e for e, t in self._seen.items() if t < lo]:
            del self._seen[eid]
