"""The processor-side health hook: after a batch is stored, rebuild every health bucket it touched.

``EventWriter.write`` (the processor, over the local log or Kafka alike) calls ``mark`` with the
events it just stored. Marking is cheap bookkeeping; a background thread coalesces what was marked over a
fraction of a second and rebuilds those buckets, so an ingest request never waits for aggregation (a
sequential sender would otherwise pay a rebuild per request). A second thread, on a slower clock, rebuilds the
seconds long invocations ran through (``SPANNED_EVERY_S``). ``flush`` waits until everything marked so far
is rebuilt.

Why whole-bucket rebuilds instead of incremental aggregate states: the raw tables keep re-delivered copies
until a merge collapses them, and a copy can arrive minutes later by another path with a slightly different
time. A materialized view would count every copy; a rebuild reads the facts de-duplicated by request, so it
is exact for late, out-of-order and duplicated facts alike. Each rebuild is stamped with ``now64()`` when it
starts, and the tables keep the newest stamp per bucket: a rebuild that missed a fact started before that
fact's insert returned, and the fact's own writer rebuilds the bucket afterwards with a later stamp. So two
processors (a rebalance) converge without coordinating.

A process that stops between storing a batch and rebuilding its buckets loses only that in-memory mark: at
start, the aggregator marks everything stored in the last ``RECOVERY_MINUTES`` again.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from clickhouse_connect.driver.client import Client

from fnscope.events import Event
from fnscope.processors.health_concurrency import recompute_concurrency
from fnscope.processors.health_minutes import recompute_minutes, recompute_throttles
from fnscope.processors.health_ranges import JITTER_S, TenantDirt, dirty_ranges, merge
from fnscope.store import connect

log = logging.getLogger("fnscope.health")

RECOVERY_MINUTES = 15
# Under load a rebuild's cost grows with the facts it reads, so the wait before a lane's next rebuild grows with its
# last one's duration: each lane takes at most 1/(1 + REST_RATIO) of a core, never the processor's whole share, until
# its wait reaches its longest. Marks arriving within the wait are rebuilt together.
REST_RATIO = 19.0
# The prompt lane: everything a batch touched but the seconds long invocations ran through. Stats trail a stored fact
# by the processor's linger, this lane's wait (at most MAX_COALESCE_S) and a rebuild (two, if the fact came just after
# one began): within 2 s while a rebuild takes under about a fifth of a second (bench.health).
COALESCE_S = 0.2
MAX_COALESCE_S = 1.5
# The spanned lane: the seconds a long invocation ran through, short of its last moments (``TenantDirt.spanned``).
# Its report changes all of their peaks, and a busy fleet's 30-60 s timeouts made every pass's sweep read the last
# minute of facts: three quarters of a rebuild's cost, and a sweep the stats waited behind. On their own thread, store
# handle and slower clock they cost a sweep every SPANNED_EVERY_S (longer under load), and delay no other bucket. A
# second's peak already waits for the reports of the runs over it (a run counts once reported): this adds the lane's
# wait and a sweep to that.
SPANNED_EVERY_S = 10.0
MAX_SPANNED_EVERY_S = 30.0
PROMPT_THREAD, SPANNED_THREAD = "health-aggregates", "health-spanned"
# The settings of the rebuilds' own client: one thread per statement, so a rebuild's CPU is about its duration, which
# is what REST_RATIO budgets. With the store's default (a thread per core) a statement may also run on chDB's pool,
# so the CPU spent could be up to twice the share meant.
QUERY_SETTINGS = {"max_threads": 1}


def health_clients(dsn: str) -> tuple[Client, Client]:
    """The rebuilding threads' own handles on the store at ``dsn`` (see ``EventWriter``)."""
    return connect(dsn, QUERY_SETTINGS), connect(dsn, QUERY_SETTINGS)


# Per tenant and minute of everything stored recently: the seconds its invocations span, and its functions.
_RECENT_INVOCATIONS = """
SELECT tenant, toUnixTimestamp(toStartOfMinute(time)) AS minute,
       toUnixTimestamp(min(coalesce(start_time, time))) - toInt64(ceil(max(coalesce(init_duration_ms, 0)) / 1000))
           AS first_s,
       toUnixTimestamp(max(time)) AS last_s, groupUniqArray(function) AS functions
FROM invocations
WHERE ingested_at >= now64(3) - toIntervalMinute({minutes:UInt32})
  AND kind IN ('report', 'start', 'timeout', 'oom', 'fault', 'init_report')
GROUP BY tenant, minute"""

_RECENT_THROTTLES = """
SELECT tenant, toUnixTimestamp(toStartOfMinute(time)) AS minute, groupUniqArray(function) AS functions FROM (
    SELECT tenant, time, function FROM api_access
    WHERE ingested_at >= now64(3) - toIntervalMinute({minutes:UInt32}) AND throttled AND function != ''
    UNION ALL
    SELECT tenant, time, function FROM audit_events
    WHERE ingested_at >= now64(3) - toIntervalMinute({minutes:UInt32})
      AND error_code = 'TooManyRequestsException' AND function != ''
) GROUP BY tenant, minute"""


@dataclass
class _Lane:
    """Marks waiting for one rebuilding thread, and how long that thread lets them gather."""

    name: str
    client: Client  # a handle of its own: clickhouse-connect serialises calls per handle (a server, per session)
    least_wait_s: float
    most_wait_s: float
    pending: dict[str, TenantDirt] = field(default_factory=dict)
    busy: bool = False
    thread: threading.Thread | None = None

    def add(self, tenant: str, dirt: TenantDirt) -> None:
        self.pending[tenant] = self.pending[tenant].union(dirt) if tenant in self.pending else dirt


class HealthAggregator:
    def __init__(
        self, client: Client, spanned_client: Client | None = None, recover_minutes: int = RECOVERY_MINUTES
    ) -> None:
        """``client`` rebuilds what batches touched, ``spanned_client`` (``client`` if not given) the seconds long
        invocations ran through: with one handle the two lanes take turns."""
        self.client = client
        self._prompt = _Lane(PROMPT_THREAD, client, COALESCE_S, MAX_COALESCE_S)
        self._spanned = _Lane(SPANNED_THREAD, spanned_client or client, SPANNED_EVERY_S, MAX_SPANNED_EVERY_S)
        self._lanes = (self._prompt, self._spanned)
        self._stopped = False
        self._flushing = 0  # callers waiting in flush(): they end the coalescing wait early
        self._cond = threading.Condition()
        self._started = False
        self._recover_minutes = recover_minutes

    # --- the hook --------------------------------------------------------------------------------------

    def mark(self, events: Iterable[Event]) -> None:
        """Note the buckets these (already stored) events can change; they are rebuilt shortly."""
        self._add(dirty_ranges(events))

    def flush(self, timeout: float = 120.0) -> None:
        """Wait until every bucket marked so far is rebuilt."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while any(lane.pending or lane.busy for lane in self._lanes) and not self._stopped:
                    self._start()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("health aggregates did not catch up")
                    self._cond.wait(left)
            finally:
                self._flushing -= 1

    def stop(self) -> None:
        """Stop rebuilding; what is still marked is left to the next start's recovery."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Rebuild what is marked, then stop the threads: registered at exit, so the process never ends (and
        tears the embedded store down) in the middle of a rebuild."""
        try:
            self.flush(timeout)
        except Exception as exc:
            log.warning("health aggregates left unfinished at exit (recovered at next start): %s", exc)
        self.stop()
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            if lane.thread is not None and lane.thread is not threading.current_thread():
                lane.thread.join(max(0.0, deadline - time.monotonic()))

    def refresh(self, events: Iterable[Event]) -> None:
        """Rebuild the buckets these events can change, now, in the caller's thread."""
        self._rebuild(self.client, dirty_ranges(events))

    # --- the rebuilding threads ------------------------------------------------------------------------

    def _add(self, dirt: dict[str, TenantDirt]) -> None:
        if not dirt:
            return
        with self._cond:
            for tenant, d in dirt.items():
                if d.spanned:
                    self._spanned.add(tenant, TenantDirt(spanned=d.spanned))
                    d = replace(d, spanned=[])
                if d.seconds or d.minutes or d.throttle_minutes:
                    self._prompt.add(tenant, d)
            self._start()
            self._cond.notify_all()

    def _start(self) -> None:
        """With the lock held: start the lanes' threads, once (never after ``stop``)."""
        if self._started or self._stopped:
            return
        self._started = True
        for lane in self._lanes:
            lane.thread = threading.Thread(target=self._run, args=(lane,), name=lane.name, daemon=True)
            lane.thread.start()
        atexit.register(self.close)

    def _run(self, lane: _Lane) -> None:
        if lane is self._prompt:
            try:
                self._add(self._recent())
            except Exception:  # a store that is not there yet: nothing to recover from
                log.exception("health recovery scan failed")
        backoff, wait_s = 1.0, lane.least_wait_s
        while True:
            with self._cond:
                while not lane.pending and not self._stopped:
                    self._cond.wait()
                self._coalesce(wait_s)
                if self._stopped:
                    return
                work, lane.pending, lane.busy = lane.pending, {}, True
            started = time.monotonic()
            try:
                self._rebuild(lane.client, work)
            except Exception as exc:  # the store is down or refusing: keep the marks and try again
                log.warning("health rebuild failed, retrying in %.0fs: %s", backoff, exc)
                self._add(work)
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            else:
                backoff = 1.0
                wait_s = min(lane.most_wait_s, max(lane.least_wait_s, REST_RATIO * (time.monotonic() - started)))
            finally:
                with self._cond:
                    lane.busy = False
                    self._cond.notify_all()

    def _coalesce(self, seconds: float) -> None:
        """With the lock held: let marks gather for this long, unless a flush is waiting or the aggregator stops."""
        deadline = time.monotonic() + seconds
        while not self._stopped and not self._flushing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    @staticmethod
    def _rebuild(client: Client, dirt: dict[str, TenantDirt]) -> None:
        for tenant, d in dirt.items():
            for first, last in merge(d.seconds + d.spanned, gap=60):
                recompute_concurrency(client, tenant, first, last)
            for first, last in d.minutes:
                recompute_minutes(client, tenant, d.functions, first, last)
            for first, last in d.throttle_minutes:
                recompute_throttles(client, tenant, d.throttle_functions, first, last)

    def _recent(self) -> dict[str, TenantDirt]:
        """Everything stored in the last minutes, as marks: what a stopped process may not have rebuilt."""
        if self._recover_minutes <= 0:
            return {}
        params = {"minutes": self._recover_minutes}
        dirt: dict[str, TenantDirt] = {}
        for tenant, minute, first_s, last_s, functions in self.client.query(_RECENT_INVOCATIONS, params).result_rows:
            d = dirt.setdefault(tenant, TenantDirt())
            d.seconds.append((min(first_s, minute) - JITTER_S, last_s + JITTER_S))
            d.minutes.append((minute // 60 - 1, minute // 60 + 1))
            d.functions.update(functions)
        for tenant, minute, functions in self.client.query(_RECENT_THROTTLES, params).result_rows:
            d = dirt.setdefault(tenant, TenantDirt())
            d.throttle_minutes.append((minute // 60, minute // 60))
            d.throttle_functions.update(functions)
        if dirt:
            log.info(
                "re-marking health buckets of %d tenant(s) stored in the last %d minutes", len(dirt), params["minutes"]
            )
        return {tenant: d.merged() for tenant, d in dirt.items()}
