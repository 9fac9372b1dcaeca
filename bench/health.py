"""The health rebuilds under a live fleet: how much of the time they take, and how long stats trail a stored fact.

    python -m bench.health [--minutes 3] [--functions 64] [--calls-per-second 1500]

The processor's writer stores a batch about every 0.3 s, as `fnscope up` does, of a fleet's Telemetry facts in real
time (the simulator's, parsed by the receivers' parser, their times moved to now: long invocations, timeouts and
cold starts included), and rebuilds the health buckets each batch touched exactly as in production
(``processors/health_aggregates.py``). `bench.stats` times a backfill's rebuilds, and `bench.ingest` replays batches
whose times stand still; neither shows what live traffic costs, where every pass rebuilds the current minute, and
the seconds each long invocation spans are rebuilt when its report comes.

Printed after the first minute (the store's first parts), beside the reference from the same run, the writer's own
inserts of the same facts:
- the share of a core the rebuilding threads take (the time they spend rebuilding: each statement runs on one thread);
- ms per rebuild of what batches touched, and each kind's share (concurrency sweep, minute aggregates); ms per
  rebuild of the seconds long invocations ran through (their own thread, on a slower clock);
- how long after a batch's insert returned its buckets were rebuilt (what `/api/stats` trails by, less the
  processor's linger), and for batches with a long invocation's report, the seconds it ran through.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

import fnscope.processors.health_aggregates as health
from bench.figures import percentile
from fnscope.collector.formats import telemetry
from fnscope.events import Event
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.simulator.scheduler import simulate
from fnscope.simulator.wire import iter_render
from fnscope.sink import IngestContext

BATCH_EVERY_S = 0.3  # fnscope.app.roles.EMBEDDED_LINGER_S


def live_events(functions: int, rate: float, seconds: float) -> list[Event]:
    """The fleet's Telemetry facts as the parser makes them, by time, moved to start a second from now."""
    start = datetime.now(UTC)
    events = [
        event
        for batch in iter_render(simulate(functions, rate, seconds, seed=3, start=start))
        for req in batch
        if req.kind == "telemetry"
        for event in telemetry.parse(req.body, IngestContext(params=dict(req.params))).events
    ]
    shift = datetime.now(UTC) + timedelta(seconds=1) - start
    for event in events:
        event.time += shift
        if getattr(event, "start_time", None) is not None:
            event.start_time += shift  # type: ignore[attr-defined]
    return sorted(events, key=lambda e: e.time)


class Clock:
    """Time spent in each kind of rebuild (the module's functions, wrapped), and each batch's wait for its rebuild."""

    def __init__(self, aggregator: health.HealthAggregator) -> None:
        self.spent: Counter[str] = Counter()
        self.rebuilds = 0
        self.spanned = 0
        self.lags: list[float] = []
        self.spanned_lags: list[float] = []
        self._marked: list[float] = []
        self._marked_spanned: list[float] = []  # batches with a long invocation's report
        self._lock = threading.Lock()
        for name in ("recompute_concurrency", "recompute_minutes", "recompute_throttles"):
            setattr(health, name, self._timed(name.removeprefix("recompute_"), getattr(health, name)))
        mark, rebuild = aggregator.mark, aggregator._rebuild

        def marked(stored: Iterable[Event]) -> None:
            now, events = time.monotonic(), list(stored)  # the writer hands over a generator
            long = any(d.spanned for d in health.dirty_ranges(events).values())
            with self._lock:
                self._marked.append(now)
                if long:
                    self._marked_spanned.append(now)
            mark(events)

        def rebuilt(client: Client, dirt: dict[str, health.TenantDirt]) -> None:
            spanned = threading.current_thread().name == health.SPANNED_THREAD
            # what was marked before now is in this rebuild's work (but for a mark in the instant since it was taken)
            with self._lock:
                if spanned:
                    waiting, self._marked_spanned = self._marked_spanned, []
                else:
                    waiting, self._marked = self._marked, []
            began = time.perf_counter()
            rebuild(client, dirt)
            self.spent["all"] += time.perf_counter() - began
            done = time.monotonic()
            if spanned:
                self.spent["spanned"] += time.perf_counter() - began
                self.spanned += 1
                self.spanned_lags += [done - at for at in waiting]
            else:
                self.rebuilds += 1
                self.lags += [done - at for at in waiting]

        aggregator.mark, aggregator._rebuild = marked, rebuilt  # type: ignore[method-assign]

    def _timed(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if threading.current_thread().name != health.SPANNED_THREAD:
                    self.spent[kind] += time.perf_counter() - began

        return timed

    def snapshot(self) -> tuple[Counter[str], int, int, int, int]:
        return Counter(self.spent), self.rebuilds, self.spanned, len(self.lags), len(self.spanned_lags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--functions", type=int, default=64)
    parser.add_argument("--calls-per-second", type=float, default=1500.0)
    args = parser.parse_args()

    events = live_events(args.functions, args.calls_per_second, args.minutes * 60)
    dsn = f"chdb://{tempfile.mkdtemp(prefix='fnscope-bench-health-')}/store"
    writer = EventWriter(open_store(dsn), health_clients=health.health_clients(dsn))
    clock = Clock(writer.health)
    print(
        f"{args.functions} functions, {args.calls_per_second:g} calls a second for {args.minutes:g} minutes: "
        f"{len(events):,} Telemetry facts, stored in real time every {BATCH_EVERY_S} s",
        flush=True,
    )
    began = time.monotonic()
    measured: tuple[float, tuple[Counter[str], int, int]] | None = None
    inserting, done = 0.0, 0
    while done < len(events):
        tick, now = time.monotonic(), datetime.now(UTC)
        upto = done
        while upto < len(events) and events[upto].time <= now:
            upto += 1
        if measured is None and time.monotonic() - began >= 60:
            measured, inserting = (time.monotonic(), clock.snapshot()), 0.0
        if upto > done:
            started = time.perf_counter()
            writer.write(events[done:upto])
            inserting += time.perf_counter() - started
            done = upto
        time.sleep(max(0.0, tick + BATCH_EVERY_S - time.monotonic()))
    writer.health.flush()
    if measured is None:
        raise SystemExit("run for more than a minute: the first is not measured")
    since, (spent0, rebuilds0, spanned0, lags0, spanned_lags0) = measured
    elapsed = time.monotonic() - since
    spent = clock.spent - spent0
    rebuilds, spanned = clock.rebuilds - rebuilds0, clock.spanned - spanned0
    lags, spanned_lags = clock.lags[lags0:], clock.spanned_lags[spanned_lags0:]
    prompt = spent["all"] - spent["spanned"]
    print(
        f"  after the first minute, over {elapsed:.0f} s: the rebuilds took {spent['all'] / elapsed:.0%} of a core. "
        f"{rebuilds} rebuilds of what batches touched, {prompt / max(rebuilds, 1) * 1000:.0f} ms each (concurrency "
        f"{spent['concurrency'] / max(rebuilds, 1) * 1000:.0f} ms, minutes "
        f"{spent['minutes'] / max(rebuilds, 1) * 1000:.0f} ms); {spanned} of the seconds long invocations ran "
        f"through, {spent['spanned'] / max(spanned, 1) * 1000:.0f} ms each"
    )
    print(f"  reference, same run: the writer's inserts of the same facts took {inserting / elapsed:.0%} of the time")
    print(
        f"  a batch's buckets rebuilt after its insert returned: {_p50_p99(lags)}; the seconds a long invocation ran "
        f"through: {_p50_p99(spanned_lags)}"
    )


def _p50_p99(seconds: list[float]) -> str:
    if not seconds:
        return "no batches"
    return f"p50 {percentile(seconds, 0.5):.1f} s, p99 {percentile(seconds, 0.99):.1f} s ({len(seconds)} batches)"


if __name__ == "__main__":
    main()
