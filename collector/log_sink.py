"""Embedded mode's sink: events appended to the local durable log (``fnscope.local_log``), group-committed.

A request's events are encoded as the Kafka messages are (``fnscope.transport``) and queued; one thread appends
everything that queued meanwhile, and in the few milliseconds after, in one transaction — one fsync for all of those
requests — then tells each that its events are durable. Storing them is the processor's job, at its own pace:
inserts no longer follow the number of senders, and a record the store refuses becomes a dead letter there, costing
nobody's request.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from concurrent.futures import Future

from fnscope.events import Event, Signal
from fnscope.local_log import LocalLog, LogFull
from fnscope.sink import Saturated, StoreUnavailable
from fnscope.transport import encode_messages

log = logging.getLogger("fnscope.log_sink")
RETRY_AFTER_FAILURE_S = 2.0  # after a failed append, /readyz says not ready this long
# After idling, requests that arrive this soon after the first are taken into the same transaction. A fleet's
# extensions post at moments of their own, so without it nearly every request paid a transaction and an fsync of its
# own (about 0.3 ms of CPU each at 300 requests a second); a few milliseconds more on a 2xx is not noticed.
GROUP_LINGER_S = 0.005


class LogBusy(Saturated):
    """The log holds its size limit: 429 with Retry-After."""


class LocalLogSink:
    readiness_name = "local_log"
    submit_never_blocks = True  # it encodes and queues: the append thread does the waiting

    def __init__(self, local_log: LocalLog) -> None:
        self._log = local_log
        self._pending: list[tuple[list[tuple[Signal, bytes, list[Event]]], Future[None]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._failed_at: float | None = None
        self._last_appended = local_log.last_id()  # what a stopped process acknowledged counts too
        self._thread = threading.Thread(target=self._run, name="log-append", daemon=True)
        self._thread.start()

    def submit(self, events: list[Event]) -> Future[None]:
        future: Future[None] = Future()
        if not events:
            future.set_result(None)
            return future
        if self._log.held_bytes > self._log.max_bytes:
            raise LogBusy(f"the local log holds {self._log.held_bytes} bytes not yet stored")
        messages = [(signal, value, chunk) for signal, _key, value, chunk in encode_messages(events)]
        with self._cond:
            if self._closed:
                raise Saturated("shutting down")
            self._pending.append((messages, future))
            self._cond.notify()
        return future

    def ready(self) -> bool:
        recent_failure = self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE_S
        return self._thread.is_alive() and not self._closed and not recent_failure

    def stored(self, timeout_s: float) -> bool:
        """Wait until everything acknowledged so far is in the store (``?wait=stored``)."""
        return self._log.wait_committed(self._last_appended, timeout_s)

    def close(self) -> None:
        """Append what is queued, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                idle = not self._pending
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
            if idle and not self._closed:  # requests queued during the last append need no wait for company
                time.sleep(GROUP_LINGER_S)
            with self._cond:
                batch, self._pending = self._pending, []
            try:
                messages = [message for requests, _ in batch for message in requests]
                # the events go along: this process's processor stores them without parsing the bytes again
                self._last_appended = self._log.append([(s, v) for s, v, _ in messages], [e for _, _, e in messages])
            except LogFull as exc:
                for _, future in batch:
                    _settle(future, LogBusy(str(exc)))
                continue
            except (sqlite3.Error, OSError) as exc:  # disk full, or the file gone: nothing of this batch is durable
                log.warning("the local log refused an append of %d requests: %s", len(batch), exc)
                self._failed_at = time.monotonic()
                refusal = StoreUnavailable(str(exc), full="full" in str(exc).lower() or "space" in str(exc).lower())
                for _, future in batch:
                    _settle(future, refusal)
                continue
            self._failed_at = None
            for _, future in batch:
                _settle(future)


def _settle(future: Future[None], error: Exception | None = None) -> None:
    """Tell a request its outcome, unless it stopped waiting (a timed-out request cancelled its future)."""
    if not future.set_running_or_notify_cancel():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
