"""Group commit for the embedded store: many concurrent requests, few inserts, each caller told when durable.

An HTTP request hands its events over and waits on a future; a single writer thread takes everything that
queued up meanwhile and writes it in one columnar insert per table. The future resolves only after the
insert returned, which is what lets the receiver answer 2xx.

Under concurrent load the writer lingers briefly before taking a batch (at most half the last write's
duration, never more than ``max_linger_s``, and only while the batch is still small): a chDB insert costs
about the same CPU whatever its size (tens of milliseconds per table, more with materialized views), so
fewer, larger inserts leave more of the machine for parsing. A lone sequential sender never waits: lingering
starts only once a batch held more than one request, or once a request arrived while a write was running.
That second case is senders spread out in time, like Lambda extensions each posting once a second at its own
moment: every request would be a write of its own, so the writer rests ``rest_ratio`` times the last write's
duration (at most ``max_rest_s``) and lets the next few share one (bench/ingest.py's ``--extensions`` measures
it: twenty such senders took a whole core, now about two thirds, for about 0.1 s more per 2xx).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from fnscope.events import Event, Signal
from fnscope.processors.writer import EventWriter, stored_counts
from fnscope.sink import Refused, Saturated, StoreUnavailable
from fnscope.telemetry import pipeline_metrics

# After the store refused a whole write, senders are told it is unavailable (and /readyz says so) this long before
# the next request tries it again.
RETRY_AFTER_FAILURE_S = 2.0
log = logging.getLogger("fnscope.group_commit")


def _disk_full(exc: BaseException) -> bool:
    text = str(exc)
    return "No space left on device" in text or "NOT_ENOUGH_SPACE" in text or "ENOSPC" in text


class GroupCommitWriter:
    readiness_name = "store_writer"

    def __init__(
        self,
        writer: EventWriter,
        max_pending: int = 1_000_000,
        on_write: Callable[[dict[Signal, int]], None] | None = None,
        max_linger_s: float = 0.1,
        rest_ratio: float = 3.0,
        max_rest_s: float = 0.2,
        target_events: int = 20_000,
    ) -> None:
        self._writer = writer
        self._max_linger_s = max_linger_s
        self._rest_ratio = rest_ratio
        self._max_rest_s = max_rest_s
        self._rest_until = 0.0  # after a lone request's write that others arrived during: gather until then
        self._target_events = target_events
        self._last_requests = 0
        self._last_write_s = 0.0
        self._metrics = pipeline_metrics()
        self._max_pending = max_pending
        self._on_write = on_write
        self._pending: list[tuple[list[Event], Future[list[Refused]]]] = []
        self._pending_events = 0
        self._cond = threading.Condition()
        self._closed = False
        self._failed_at: float | None = None  # when the store last refused a whole write (monotonic)
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, events: list[Event]) -> Future[list[Refused]]:
        future: Future[list[Refused]] = Future()
        if not events:
            future.set_result([])
            return future
        with self._cond:
            if self._closed:
                raise Saturated("the store is shutting down")
            # An empty queue takes any request, so one request larger than the limit is not refused forever.
            if self._pending_events and self._pending_events + len(events) > self._max_pending:
                raise Saturated(f"{self._pending_events} events are waiting for the store")
            self._pending.append((events, future))
            self._pending_events += len(events)
            self._metrics.pending_events.set(self._pending_events)
            self._cond.notify()
        return future

    def ready(self) -> bool:
        """Alive, and the store took the last write, or the last refusal is old enough to try the store again."""
        recent_failure = self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE_S
        return self._thread.is_alive() and not self._closed and not recent_failure

    def close(self) -> None:
        """Flush what is queued, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                self._linger()
                batch, self._pending = self._pending, []
                self._pending_events = 0
                self._metrics.pending_events.set(0)
            events = [event for chunk, _ in batch for event in chunk]
            started = time.perf_counter()
            try:
                # a record the store refuses costs only itself: a dead letter, answered to its own sender
                refused = self._writer.write_isolating([chunk for chunk, _ in batch])
            except Exception as exc:  # the store took nothing at all: every waiting request gets a 503
                log.warning("the store refused a write of %d events: %s", len(events), exc)
                self._failed_at = time.monotonic()
                refusal = StoreUnavailable(str(exc), full=_disk_full(exc))
                for _, future in batch:
                    future.set_exception(refusal)
                continue
            self._failed_at = None
            written = stored_counts(events, refused)
            self._last_requests, self._last_write_s = len(batch), time.perf_counter() - started
            with self._cond:
                overlapped = len(batch) == 1 and bool(self._pending)
                rest = min(self._max_rest_s, self._rest_ratio * self._last_write_s) if overlapped else 0.0
                self._rest_until = time.monotonic() + rest
            self._metrics.record_insert("embedded", len(events), self._last_write_s)
            if self._on_write is not None:
                self._on_write(written)
            for (_, future), dead in zip(batch, refused):
                future.set_result(dead)

    def _linger(self) -> None:
        """With the lock held: let a small batch grow while other requests are known to be arriving."""
        if self._last_requests >= 2:
            deadline = time.monotonic() + min(self._max_linger_s, self._last_write_s / 2)
        else:
            deadline = self._rest_until  # now, unless others sent during the last write
        while not self._closed and self._pending_events < self._target_events:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)
