"""The alert state keeps runs for the concurrency rules' windows only, and counts for the longest window (the canary's
ten minutes): every figure a rule reads must be what keeping everything for ten minutes gives.

A fleet's invocations (starts and REPORTs, some runs minutes long, some timing out with a separate timeout fact,
two versions, some facts delivered twice or out of order by up to 20 s) are fed for twelve minutes to the alert
state the service builds from the built-in rules and to one that keeps its runs as long as its counts, as the
alerts did before. Every 10 s of event time, each rule's reading is compared, with the state pruned each second as
the alert service's tick does, or only once a minute or more (a tick held up: a minute's peak must still be taken).
The one difference the README states (a timeout fact minutes after its REPORT no longer counts for its version) is
pinned by the last test.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from fnscope.alerts.rules import BUILTIN_RULES, Runaway
from fnscope.alerts.signals import Signals
from fnscope.canary import Policy
from fnscope.events import Invocation

BASE = 1_750_000_000.0
FUNCTIONS = ("orders", "billing", "search")


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(BASE + t, UTC)


def fleet(seconds: int, seed: int) -> list[tuple[float, Invocation]]:
    """(arrival, fact) for ``seconds`` of a small fleet's calls, in arrival order."""
    rng = random.Random(seed)
    arrivals: list[tuple[float, Invocation]] = []
    n = 0
    for second in range(seconds):
        for _ in range(rng.randrange(8)):
            n += 1
            function, rid = rng.choice(FUNCTIONS), f"req-{n}"
            begin = second + rng.random()
            length = rng.expovariate(1 / 0.4) if rng.random() < 0.97 else rng.uniform(30, 300)  # some run minutes
            timed_out = rng.random() < 0.05
            common: dict[str, Any] = {"event_id": "", "source": "telemetry", "function": function, "request_id": rid}
            version = "2" if rng.random() < 0.3 else "1"
            start = Invocation(time=_at(begin), kind="start", **common)
            report = Invocation(
                time=_at(begin + length), kind="report", version=version, duration_ms=length * 1000,
                status="timeout" if timed_out else rng.choice(["success"] * 9 + ["error"]),
                start_time=_at(begin), init_duration_ms=rng.choice([None, None, 300.0]),
                billed_duration_ms=length * 1000, memory_size_mb=512,
            **common)  # fmt: skip
            facts = [start, report]
            if timed_out:  # the "Task timed out" line, which may come before or after the REPORT
                facts.append(Invocation(time=_at(begin + length + rng.uniform(-1, 1)), kind="timeout", **common))
            if rng.random() < 0.1:
                facts.append(rng.choice(facts))  # delivered twice
            for fact in facts:
                arrivals.append((fact.time.timestamp() - BASE + rng.uniform(0, 20), fact))
    return sorted(arrivals, key=lambda a: a[0])


def readings(signals: Signals, now: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    policy = Policy()
    for function in FUNCTIONS:
        key = ("default", function)
        for rule in BUILTIN_RULES:
            if rule.kind in ("concurrency", "error_rate", "p99_duration", "timeouts", "throttles"):
                figures[f"{function} {rule.name}"] = signals.measure(rule.kind, key, rule.window_s, now)
            elif rule.kind == "runaway":
                figures[f"{function} runaway"] = signals.runaway(key, rule.window_s, now, Runaway())
            elif rule.kind == "canary":
                figures[f"{function} canary"] = signals.canary_figures(key, "2", rule.window_s, now, policy)
    return figures


@pytest.mark.parametrize("prune_every", [1, 60, 95])  # a tick each second, or held up for a minute and more
def test_keeping_runs_for_the_concurrency_windows_only_changes_no_reading(prune_every: int) -> None:
    lean = Signals.for_rules(BUILTIN_RULES, account_limit=1000)
    assert (lean.keep_s, lean.runs_keep_s) == (660, 120)  # the canary's 10 minutes; the concurrency rule's minute
    full = Signals(lean.keep_s, 1000, watch_minutes=True)  # runs kept as long as the counts
    arrivals = fleet(720, seed=3)
    compared = peak = 0
    step = 0.5
    now, k = step, 0
    while k < len(arrivals):
        batch = []
        while k < len(arrivals) and arrivals[k][0] < now:
            batch.append(arrivals[k][1])
            k += 1
        for signals in (lean, full):
            signals.observe(batch, BASE + now)
            if now % prune_every == 0:
                signals.prune(BASE + now)
        if now % 10 == 0:
            figures = readings(lean, BASE + now)
            assert figures == readings(full, BASE + now), now
            compared += 1
            peak = max(peak, *(figures[f"{f} concurrency-headroom"]["peak"] for f in FUNCTIONS))
        now += step
    held = {sum(len(fn.runs) for fn in s.functions.values()) for s in (lean, full)}
    assert compared > 70 and peak >= 5  # what was compared was a real load
    assert min(held) * 3 < max(held)  # and the lean state does hold far fewer runs


def test_a_late_report_ends_a_run_kept_as_running() -> None:
    """A run still going is kept whatever its age; its REPORT arriving after the runs' horizon still ends it (or
    it would count as running for a quarter of an hour)."""
    signals = Signals(660, 1000, runs_keep_s=120)
    common: dict[str, Any] = {"event_id": "", "source": "telemetry", "function": "orders", "request_id": "long"}
    signals.observe([Invocation(time=_at(0), kind="start", **common)], BASE + 1)
    key = ("default", "orders")
    assert signals.measure("concurrency", key, 60, BASE + 200)["peak"] == 1  # running for 200 s
    report = Invocation(time=_at(30), kind="report", start_time=_at(0), duration_ms=30_000, **common)
    signals.observe([report], BASE + 200)  # it ended at 30 s, before the 80 s the runs are kept from
    signals.prune(BASE + 200)
    assert signals.measure("concurrency", key, 60, BASE + 200)["peak"] == 0
    assert signals.functions[key].runs == {}
    # its start delivered again later is not taken up as a new run
    signals.observe([Invocation(time=_at(0), kind="start", **common)], BASE + 201)
    assert signals.measure("concurrency", key, 60, BASE + 201)["peak"] == 0


def test_a_timeout_fact_after_its_report_counts_once_and_for_the_version_while_the_run_is_kept() -> None:
    """A run and its version are kept for two minutes after its report, its timeout fact and counts for ten."""
    signals = Signals.for_rules(BUILTIN_RULES, account_limit=1000)
    key = ("default", "orders")

    def call(rid: str, at: float, timeout_at: float) -> None:
        common: dict[str, Any] = {"event_id": "", "source": "telemetry", "function": "orders", "request_id": rid}
        report = Invocation(
            time=_at(at), kind="report", version="2", start_time=_at(at - 3), duration_ms=3000, **common
        )
        signals.observe([report], BASE + at + 1)
        signals.prune(BASE + timeout_at)
        for copy in range(2):  # the "Task timed out" line, then the same fact by another path
            timeout = Invocation(time=_at(at), kind="timeout", **common)
            timeout.event_id = f"{rid}-timeout-{copy}"
            signals.observe([timeout], BASE + timeout_at + copy)

    call("soon", 10, timeout_at=100)  # its run still kept: a timeout of version 2
    call("late", 20, timeout_at=300)  # the run forgotten: a timeout of the function only
    new, _ = signals.canary_figures(key, "2", 600, BASE + 320, Policy())
    assert (new.invocations, new.timeouts) == (2, 1)
    assert signals.measure("timeouts", key, 600, BASE + 320)["value"] == 2
    signals.prune(BASE + 22 + signals.keep_s)  # and the facts go with the counts
    fn = signals.functions[key]
    assert (fn.run_versions, fn.timed_out, fn.version_timed_out, fn.runs) == ({}, {}, {}, {})
