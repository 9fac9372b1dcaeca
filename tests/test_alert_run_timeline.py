"""What the alert rules measure over a window, from state kept second by second, against plain readings of the events.

The peak concurrency, read from the run timeline, against a plain sweep over every run kept.

The sweep is how the alerts measured it before the timeline: each run (and the initialisation a REPORT states before
it) is a half-open span, a run without a report lasts until now (at most a longest run), and the peak is the most
spans at one instant of the window. Starts and reports come in any order, twice, with fractional window bounds and
pruning in between.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from fnscope.alerts.signals import MAX_RUN_S, FunctionState, Signals
from fnscope.events import Invocation

BASE = 1_750_000_000.0  # mid 2025


def plain_sweep(fn: FunctionState, since: float, now: float, until: float | None) -> int:
    hi = math.inf if until is None else until
    edges: list[tuple[float, int]] = []

    def span(begin: float, stop: float) -> None:
        if stop > since and begin < hi and stop > begin:
            edges.extend([(max(begin, since), 1), (min(stop, hi), -1)])

    for rid, (begin, end) in fn.runs.items():
        if begin is None or begin == math.inf:
            continue
        span(begin, end if end is not None else min(now, begin + MAX_RUN_S))
        if rid in fn.inits:
            span(begin - fn.inits[rid], begin)
    running = peak = 0
    for _, delta in sorted(edges):
        running += delta
        peak = max(peak, running)
    return peak


def fact(rid: str, kind: str, begin: float, end: float, init_ms: float | None) -> Invocation:
    at = begin if kind == "start" else end
    return Invocation(
        event_id="", time=datetime.fromtimestamp(BASE + at, UTC), source="telemetry", function="orders",
        request_id=rid, kind=kind, duration_ms=(end - begin) * 1000 if kind == "report" else None,
        start_time=datetime.fromtimestamp(BASE + begin, UTC) if kind == "report" else None,
        init_duration_ms=init_ms if kind == "report" else None,
    )  # fmt: skip


# times on a 0.25 s grid, so that starts, ends and window bounds often fall on the same instant
quarter = st.integers(0, 400).map(lambda q: q / 4)
# lengths and initialisations on both sides of TIMELINE_SPAN_S (the longer ones are kept beside the timeline)
run = st.tuples(quarter, st.integers(0, 80).map(lambda q: q / 4), st.sampled_from([None, 250.0, 1500.0, 12_000.0]))


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(run, min_size=1, max_size=25),
    order=st.randoms(use_true_random=False),
    reported=st.lists(st.booleans(), min_size=25, max_size=25),
    queries=st.lists(st.tuples(quarter, st.integers(1, 240).map(lambda q: q / 4), st.booleans()), max_size=8),
    prune_at=st.one_of(st.none(), quarter),
)
def test_the_timeline_peak_is_the_plain_sweeps(runs, order, reported, queries, prune_at) -> None:  # type: ignore[no-untyped-def]
    signals = Signals(keep_s=600, account_limit=1000)
    facts = []
    for i, (begin, length, init_ms) in enumerate(runs):
        facts.append(fact(f"r{i}", "start", begin, begin + length, None))
        if reported[i]:
            facts.append(fact(f"r{i}", "report", begin, begin + length, init_ms))
    facts += order.sample(facts, k=len(facts) // 3)  # some delivered twice
    order.shuffle(facts)
    now = BASE + 130
    for k in range(0, len(facts), 4):
        signals.observe(facts[k : k + 4], now)
    if prune_at is not None:
        now = BASE + 600 + prune_at  # forgets what ended before prune_at
        signals.prune(now)
    fn = signals.functions.get(("default", "orders"))
    if fn is None:
        return
    lo = int(now - signals.keep_s)
    for since, length, bounded in queries:
        since = max(BASE + since, lo)
        until = since + length if bounded else None
        assert signals.peak_concurrency(fn, since, now, until) == plain_sweep(fn, since, now, until), (since, until)


def test_window_figures_count_what_the_window_holds_of_a_long_history() -> None:
    """Ten minutes of reports, one or two a second, and windows of one and five minutes: the rules' figures are
    the window's own (read second by second, since the window is shorter than what is kept)."""
    signals = Signals(keep_s=660, account_limit=1000)
    facts, kept = [], []
    for second in range(600):
        for k in range(1 + second % 2):
            end = second + 0.5 + k * 0.25
            duration_ms = float((second * 37 + k * 11) % 900 + 1)
            report = fact(f"r{second}-{k}", "report", end - duration_ms / 1000, end, None)
            report.status = "error" if (second + k) % 7 == 0 else "success"
            facts.append(report)
            kept.append((end, report.duration_ms, report.status == "error"))
    now = BASE + 600.2
    signals.observe(facts, now)
    key = ("default", "orders")
    for window in (60, 300):
        lo = int(now - window) - BASE
        inside = [(d, failed) for end, d, failed in kept if int(end) >= lo]
        rate = signals.measure("error_rate", key, window, now)
        assert (rate["errors"], rate["invocations"]) == (sum(f for _, f in inside), len(inside))
        ordered = sorted(d for d, _ in inside)
        p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
        assert signals.measure("p99_duration", key, window, now)["value"] == p99


def test_a_report_stating_a_day_long_run_costs_one_entry_not_a_step_a_second() -> None:
    """A REPORT may state any duration up to a day, and as long an init: such a run is kept beside the timeline
    (swept on its own), or one report would add 172,800 seconds of steps to it."""
    signals = Signals(keep_s=660, account_limit=1000)
    end = 90_000.0
    day_long = fact("long", "report", end - 86_400, end, 86_400_000.0)
    signals.observe([day_long, fact("short", "report", end - 2, end - 1, None)], BASE + end + 1)
    fn = signals.functions[("default", "orders")]
    assert fn.long == {"long"}
    assert signals.peak_concurrency(fn, BASE + end - 3, BASE + end + 1) == 2  # the day-long run beside the short one
    assert signals.peak_concurrency(fn, BASE + end - 86_400 - 10, BASE + end + 1, BASE + end - 86_400) == 1  # its init
    assert signals.peak_concurrency(fn, BASE + end - 0.5, BASE + end + 1) == 1
