"""Incremental per-function state, fed with every stored batch: per-second counts, durations and running
invocations, so a rule's value over its window is a sum over a few dozen buckets, never a query.

Event time decides the bucket; re-delivered copies (same deterministic ``event_id``) count once.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sortedcontainers import SortedList

from fnscope.alerts.rules import Rule, Runaway
from fnscope.alerts.run_timeline import RunTimeline
from fnscope.alerts.second_buckets import SecondCounts, SecondDurations
from fnscope.canary import Figures, Policy, routed_version
from fnscope.events import ApiAccess, AuditEvent, Event, Invocation
from fnscope.timeparse import iso_utc

FAILED = frozenset({"error", "failure", "timeout", "oom"})
MAX_RUN_S = 15 * 60 + 10  # Lambda's longest invocation plus init: a start without its report is over by then
# A run (or its initialisation) longer than this is kept beside the timeline, not on it: on it, a span costs a
# step for every second it covers, and a report may state any duration (a start in 2000, say).
TIMELINE_SPAN_S = 10.0
HISTORY_MINUTES = 62  # per-minute figures kept for the runaway rule's baseline (an hour, and the current minute)
RUN_RULES = frozenset({"concurrency", "runaway"})  # the rules that read runs (their peak concurrency)
SEAL_AFTER_S = 5.0  # a minute's peak concurrency is taken this long after it ended (reports arrive a little late)

SeriesKey = tuple[str, str]  # (tenant, function)
V = TypeVar("V")


@dataclass
class VersionState:
    """One version's counts per second, for the canary rule (new version against the one it replaces)."""

    invocations: SecondCounts = field(default_factory=SecondCounts)
    errors: SecondCounts = field(default_factory=SecondCounts)
    timeouts: SecondCounts = field(default_factory=SecondCounts)
    throttles: SecondCounts = field(default_factory=SecondCounts)
    durations: SecondDurations = field(default_factory=SecondDurations)

    def all_buckets(self) -> tuple[SecondCounts | SecondDurations, ...]:
        return self.invocations, self.errors, self.timeouts, self.throttles, self.durations


@dataclass
class FunctionState:
    account: str = ""
    throttles: dict[str, SecondCounts] = field(default_factory=lambda: defaultdict(SecondCounts))
    invocations: SecondCounts = field(default_factory=SecondCounts)
    errors: SecondCounts = field(default_factory=SecondCounts)
    timeouts: SecondCounts = field(default_factory=SecondCounts)
    durations: SecondDurations = field(default_factory=SecondDurations)  # in ms
    # request id -> [start, end or None while still running], epoch seconds
    runs: dict[str, list[float | None]] = field(default_factory=dict)
    # the same runs by the second they ended (what pruning drops), and those still running; the ended runs and the
    # initialisations before them are also on a timeline, so a window's peak reads its seconds, not every run kept
    # (some 14,000 a function at 20 calls a second)
    ended: dict[int, set[str]] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    timeline: RunTimeline = field(default_factory=RunTimeline)
    long: set[str] = field(default_factory=set)  # ended runs with a span over TIMELINE_SPAN_S: swept one by one
    # request id (else event id) -> second it was seen: runs that timed out (kept as long as the counts), and
    # those whose version counted it (kept as long as the runs)
    timed_out: dict[str, int] = field(default_factory=dict)
    versions: dict[str, VersionState] = field(default_factory=lambda: defaultdict(VersionState))
    version_timed_out: dict[str, int] = field(default_factory=dict)
    # request id -> (version, second) of its report: a version's timeout counts in its report's second, as its
    # invocation does, so a version's timeouts in a window never outnumber its invocations. A timeout fact is
    # matched to its report's version while the runs are kept (two minutes with the built-in rules): the platform
    # states both at once, so only a report delivered first and its timeout minutes later by another path is not.
    run_versions: dict[str, tuple[str, int]] = field(default_factory=dict)
    # second -> the run ids timed out then, and those given a version then: what to forget by the second
    timeouts_at: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    versions_at: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    # request id -> seconds its environment initialised just before it started (a REPORT's Init Duration)
    inits: dict[str, float] = field(default_factory=dict)
    gb_seconds: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    # per minute, for the runaway rule's baseline: invocations, GB-seconds, and peak concurrency once it ended
    minute_invocations: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    minute_gb_seconds: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    minute_peaks: dict[int, int] = field(default_factory=dict)
    first_minute: int | None = None  # the first minute this process saw the function called
    sealed_through: int = -1  # the last minute whose peak is in minute_peaks

    def record_run(self, run_id: str, begin: float, end: float | None, init_s: float | None) -> None:
        """What a start or report says of a run: its earliest stated start, its first report's time (its end), and
        the environment's initialisation just before it."""
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = [math.inf, None]
            self.running.add(run_id)
        else:
            self._withdraw(run_id)
        run[0] = min(run[0] or math.inf, begin)
        if end is not None and (run[1] is None or end < run[1]):
            if run[1] is None:
                self.running.discard(run_id)
            else:
                self.ended[int(run[1])].discard(run_id)
            run[1] = end
            self.ended.setdefault(int(end), set()).add(run_id)
        if init_s:
            self.inits[run_id] = init_s
        spans = self.spans(run_id)
        if any(stop - begin > TIMELINE_SPAN_S for begin, stop in spans):
            self.long.add(run_id)
        else:
            for begin, stop in spans:
                self.timeline.add(begin, stop)

    def spans(self, run_id: str) -> list[tuple[float, float]]:
        """What an ended run spans, and the initialisation before it (a running run's end is not known yet: the
        sweep adds it up to now)."""
        begin, end = self.runs[run_id]
        if begin is None or begin == math.inf:
            return []
        found = [] if end is None else [(begin, end)]
        if run_id in self.inits:
            found.append((begin - self.inits[run_id], begin))
        return found

    def _withdraw(self, run_id: str) -> None:
        if run_id in self.long:
            self.long.discard(run_id)
        else:
            for begin, stop in self.spans(run_id):
                self.timeline.remove(begin, stop)

    def forget_runs(self, lo: int) -> None:
        """Drop the runs over before ``lo``: ended before it, or started a longest run before it."""
        self.timeline.forget_before(lo)
        gone = [r for s in [s for s in self.ended if s < lo] for r in self.ended.pop(s)]
        gone += [r for r in self.running if (self.runs[r][0] or 0) + MAX_RUN_S < lo]
        self.running.difference_update(gone)
        self.long.difference_update(gone)
        for rid in gone:
            del self.runs[rid]
            self.inits.pop(rid, None)

    def forget_facts(self, lo: int, runs_lo: int) -> None:
        """Drop the timeout facts stated before ``lo``, and the versions of runs reported before ``runs_lo``."""
        for second in [s for s in self.timeouts_at if s < lo]:
            for rid in self.timeouts_at.pop(second):
                if self.timed_out.get(rid, lo) < lo:
                    del self.timed_out[rid]
        for second in [s for s in self.versions_at if s < runs_lo]:
            for rid in self.versions_at.pop(second):
                if self.run_versions.get(rid, ("", runs_lo))[1] < runs_lo:
                    del self.run_versions[rid]
                    self.version_timed_out.pop(rid, None)


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


def _p99(ordered: Sequence[float]) -> float | None:
    """The nearest-rank p99 of values in ascending order."""
    n = len(ordered)
    return ordered[min(n - 1, math.ceil(0.99 * n) - 1)] if n else None


class Signals:
    """Everything the rules measure, for recent event time only (older buckets are pruned)."""

    def __init__(
        self,
        keep_s: float,
        account_limit: int,
        audit_max_age_s: float = 86_400.0,
        watch_minutes: bool = True,
        runs_keep_s: float | None = None,
    ) -> None:
        self.keep_s = keep_s
        # the runs themselves (what concurrency is swept from) may be kept for less: only the concurrency and
        # runaway rules read them, over windows of a minute where the canary's counts span ten
        self.runs_keep_s = keep_s if runs_keep_s is None else min(runs_keep_s, keep_s)
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
        self._seen: set[str] = set()
        self._peaks: dict[tuple[int, float, float, float | None], int] = {}  # until the runs change
        self._seen_at: dict[int, list[str]] = defaultdict(list)  # second -> the ids seen then, to forget them by
        self._horizon = self._runs_horizon = 0.0
        self._runs_held_from = -sys.maxsize  # runs that ended before this second are forgotten
        self._newest = -sys.maxsize  # the latest second any bucket holds

    @classmethod
    def for_rules(cls, rules: Iterable[Rule], account_limit: int, audit_max_age_s: float = 86_400.0) -> Signals:
        """What the enabled rules need: each window's history and a minute more (runs only for the rules that read
        concurrency), and the per-minute history only when a runaway rule is on."""
        enabled = [r for r in rules if r.enabled]
        keep_s = max((r.window_s for r in enabled), default=60.0) + 60
        runs_keep_s = max((r.window_s for r in enabled if r.kind in RUN_RULES), default=60.0) + 60
        watch_minutes = any(r.kind == "runaway" for r in enabled)
        return cls(keep_s, account_limit, audit_max_age_s, watch_minutes, runs_keep_s)

    # --- feeding ---------------------------------------------------------------------------------------

    def observe(self, events: Iterable[Event], now: float) -> set[SeriesKey]:
        """Add a stored batch; returns the functions it touched."""
        touched: set[SeriesKey] = set()
        self.audit_events = []
        self._peaks.clear()
        if self.started is None:
            self.started = now
        horizon = self._horizon = now - self.keep_s
        self._runs_horizon = now - self.runs_keep_s
        for event in events:
            if event.event_id in self._seen:
                continue
            t = _epoch(event)
            self._newest = max(self._newest, int(t))
            if isinstance(event, AuditEvent):
                self._remember(event.event_id, t)
                self._audit(event, touched)
                # CloudTrail delivers minutes late: audit rules count arrivals, and only a backfill is too old
                if t >= now - self.audit_max_age_s:
                    self.audit_events.append(event)
            elif t < horizon:
                continue
            elif isinstance(event, Invocation):
                if event.kind != "start" or event.status == "throttled":  # a start only states a run: stating it
                    self._remember(event.event_id, t)  # again changes nothing, so its id need not be kept
                self._invocation(event, t, touched)
            elif isinstance(event, ApiAccess) and event.throttled and event.function:
                self._remember(event.event_id, t)
                self.functions[(event.tenant, event.function)].throttles["apigateway"].add(int(t))
                touched.add((event.tenant, event.function))
        return touched

    def _audit(self, event: AuditEvent, touched: set[SeriesKey]) -> None:
        key = (event.tenant, event.function)
        if event.error_code == "TooManyRequestsException" and event.function:
            t = _epoch(event)
            if t >= self._horizon:
                self.functions[key].throttles["cloudtrail"].add(int(t))
                if version := _routed_version(event):
                    self.functions[key].versions[version].throttles.add(int(t))
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
        # a run that ended before the runs kept is not taken up again (a late report of one still going ends it)
        if (event.kind == "start" or (event.kind == "report" and event.request_id)) and (
            t >= self._runs_horizon or run_id in fn.runs
        ):
            init_s = event.init_duration_ms / 1000 if event.init_duration_ms and event.request_id else None
            end = t if event.kind == "report" else None
            fn.record_run(run_id, (event.start_time or event.time).timestamp(), end, init_s)
        if event.status == "throttled":
            fn.throttles["invocation"].add(int(t))
        timed_out = event.status == "timeout" or event.kind == "timeout" or event.error_type == "Sandbox.Timedout"
        if timed_out and run_id not in fn.timed_out:
            fn.timed_out[run_id] = int(t)
            fn.timeouts.add(int(t))
            fn.timeouts_at[int(t)].append(run_id)
        if event.kind == "report":
            second = int(t)
            fn.invocations.add(second)
            if self.watch_minutes:
                fn.minute_invocations[second // 60] += 1
                if fn.first_minute is None or second // 60 < fn.first_minute:
                    fn.first_minute = second // 60
            if event.billed_duration_ms and event.memory_size_mb:
                gb_s = event.billed_duration_ms / 1000 * event.memory_size_mb / 1024
                fn.gb_seconds[second] += gb_s
                if self.watch_minutes:
                    fn.minute_gb_seconds[second // 60] += gb_s
            if event.status in FAILED:
                fn.errors.add(second)
            if event.duration_ms is not None:
                fn.durations.add(second, event.duration_ms)
            if event.version:
                version = sys.intern(event.version)  # one string a version, not one a call
                fn.run_versions[run_id] = (version, second)
                fn.versions_at[second].append(run_id)
                ver = fn.versions[version]
                ver.invocations.add(second)
                ver.errors.add(second, event.status in FAILED)
                if event.duration_ms is not None:
                    ver.durations.add(second, event.duration_ms)
        # a timeout fact and its report may come in any order: the version counts it once both are known
        version, second = fn.run_versions.get(run_id, ("", 0))
        if version and run_id in fn.timed_out and run_id not in fn.version_timed_out:
            fn.version_timed_out[run_id] = second
            fn.versions[version].timeouts.add(second)

    # --- measuring -------------------------------------------------------------------------------------

    def limit_of(self, tenant: str, function: str) -> tuple[int, str]:
        reserved = self.reserved.get((tenant, function))
        if reserved is not None and reserved[1] >= 0:
            return reserved[1], "reserved"
        taken = sum(v for (t, _f), (_at, v) in self.reserved.items() if t == tenant and v >= 0)
        return max(0, self.account_limit - taken), "account"

    def peak_concurrency(self, fn: FunctionState, since: float, now: float, until: float | None = None) -> int:
        """Most invocations running, and environments initialising before them (as Lambda counts concurrency),
        at one instant in [since, until or now): the timeline's, with the runs still going on top."""
        key = (id(fn), since, now, until)  # a concurrency rule and a runaway rule ask the same of one batch
        if key not in self._peaks:
            self._peaks[key] = self._sweep(fn, since, now, until)
        return self._peaks[key]

    def _sweep(self, fn: FunctionState, since: float, now: float, until: float | None) -> int:
        hi = math.inf if until is None else until
        # the runs still going (no report yet), which last until now (at most a longest run), and the long ones:
        # steps on top of the timeline
        spans = [(begin, min(now, begin + MAX_RUN_S)) for rid in fn.running if (begin := fn.runs[rid][0]) is not None]
        spans += [span for rid in fn.long for span in fn.spans(rid)]
        steps: list[tuple[float, int]] = []
        for begin, stop in spans:
            if stop > since and begin < hi and stop > begin:
                steps += [(max(begin, since), 1), (min(stop, hi), -1)]
        steps.sort()  # at one instant an end (-1) before a start (+1): back-to-back runs don't overlap
        best = going = 0
        x = since
        for t, delta in steps:
            if t > x:
                best = max(best, going + fn.timeline.peak(x, t))
                x = t
            going += delta
        if x < hi:
            best = max(best, going + fn.timeline.peak(x, hi))
        return best

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
            "invocations": fn.invocations.total_since(lo, window_s) * 60 / window_s,
            "concurrency": self.peak_concurrency(fn, now - window_s, now),
            "gb_seconds": sum(self._since(fn.gb_seconds, lo)) * 60 / window_s,
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

        def total(buckets: SecondCounts) -> int:
            return buckets.total_since(lo, window_s)

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
            return {
                "value": _p99(fn.durations.sorted_since(lo, window_s)) or 0.0,
                "invocations": invocations,
            }
        raise ValueError(f"unknown rule kind {kind}")

    def canary_version(self, key: SeriesKey, window_s: float, now: float) -> str:
        """The newest numbered version of a function that ran in the window beside another one, or ''."""
        fn = self.functions.get(key)
        if fn is None:
            return ""
        lo = int(now - window_s)
        running = [v for v, st in fn.versions.items() if v.isdigit() and st.invocations.total_since(lo, window_s)]
        return max(running, key=int) if len(running) > 1 else ""

    def canary_figures(
        self, key: SeriesKey, version: str, window_s: float, now: float, policy: Policy
    ) -> tuple[Figures, Figures | None]:
        """The new version's figures and its baseline's (the busiest other version) over the window, the new
        version's calls slower than the baseline's p99 allowance counted."""
        fn = self.functions.get(key)
        lo = int(now - window_s)
        durations: dict[str, SortedList] = {}
        figures: dict[str, Figures] = {}
        for v, st in fn.versions.items() if fn else ():
            durations[v] = st.durations.sorted_since(lo, window_s)
            counts = (st.invocations, st.errors, st.timeouts, st.throttles)
            figures[v] = Figures(v, *(c.total_since(lo, window_s) for c in counts), p99_ms=_p99(durations[v]))
        new = figures.get(version, Figures(version))
        others = [f for v, f in sorted(figures.items()) if v != version and f.invocations]
        base = max(others, key=lambda f: f.invocations, default=None)
        if base is not None and base.p99_ms is not None:
            threshold = policy.slow_threshold_ms(base.p99_ms)
            mine = durations.get(version, SortedList())
            new = replace(new, slow=len(mine) - mine.bisect_right(threshold), timed=len(mine))
        return new, base

    # --- forgetting ------------------------------------------------------------------------------------

    def _seal_minutes(self, fn: FunctionState, now: float) -> None:
        """Take the peak concurrency of each minute that ended (while its runs are still kept)."""
        last = int(now - SEAL_AFTER_S) // 60 - 1
        # a minute from the oldest second whose runs are all held on is whole, however long since the last prune
        first = max(-(-self._runs_held_from // 60), last - HISTORY_MINUTES, fn.sealed_through + 1)
        for minute in range(first, last + 1):  # each minute once: a tick seals at most the one that just ended
            fn.minute_peaks[minute] = self.peak_concurrency(fn, minute * 60, now, minute * 60 + 60)
        fn.sealed_through = max(fn.sealed_through, last)

    def prune(self, now: float) -> None:
        self._peaks.clear()
        lo, runs_lo = int(now - self.keep_s), int(now - self.runs_keep_s)
        oldest_minute = int(now) // 60 - HISTORY_MINUTES
        for key in list(self.functions):
            fn = self.functions[key]
            if self.watch_minutes:
                self._seal_minutes(fn, now)
            for minutes in (fn.minute_invocations, fn.minute_gb_seconds, fn.minute_peaks):
                for m in [m for m in minutes if m < oldest_minute]:
                    del minutes[m]
            for buckets in (*fn.throttles.values(), fn.invocations, fn.errors, fn.timeouts, fn.durations):
                buckets.forget_before(lo)
            for s in [s for s in fn.gb_seconds if s < lo]:
                del fn.gb_seconds[s]
            for version, st in list(fn.versions.items()):
                for buckets in st.all_buckets():
                    buckets.forget_before(lo)
                if not st.invocations and not st.throttles:
                    del fn.versions[version]
            fn.forget_runs(runs_lo)
            fn.forget_facts(lo, runs_lo)
            quiet = not fn.runs and not fn.invocations and not any(fn.throttles.values()) and not fn.timeouts
            if (
                quiet and not fn.minute_invocations and not any(fn.minute_peaks.values())
            ):  # an hour's baseline outlives a pause
                del self.functions[key]
        for second in [s for s in self._seen_at if s < lo]:
            self._seen.difference_update(self._seen_at.pop(second))
        self._runs_held_from = max(self._runs_held_from, runs_lo)

    def _since(self, buckets: dict[int, V], lo: int) -> list[V]:
        """What the buckets hold from second ``lo`` on: looked up second by second when the window is shorter than
        all that is kept (a minute's window of 11 minutes of buckets), else read from every bucket."""
        if self._newest - lo < len(buckets):
            return [v for s in range(lo, self._newest + 1) if (v := buckets.get(s)) is not None]
        return [v for s, v in buckets.items() if s >= lo]

    def _remember(self, event_id: str, t: float) -> None:
        self._seen.add(event_id)
        self._seen_at[math.floor(t)].append(event_id)
