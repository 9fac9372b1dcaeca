"""The processor: reads the log — Kafka in distributed mode, the local durable log in `fnscope up` — and writes it
into the store. The same loop for both; only the source differs (``KafkaSource``, ``LocalLogSource``).

A batch is what one read returned, topped up by further reads for up to ``max_linger_s`` (at most a second: how
fresh search stays), ``max_records`` messages or ``target_events`` events: each insert costs tens of milliseconds of
CPU per table whatever its size, so inserts follow time, not the number of senders. The position is committed only
after the insert returned; a processor killed before that reads the batch again, and deterministic event ids plus
ReplacingMergeTree make the second copy invisible. A record the store refuses becomes a dead letter with the
store's reason (the rest of the batch stored); while the store takes nothing at all, the same batch is retried with
backoff and nothing is committed — the log, not memory, holds what arrives meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from pydantic import ValidationError

from fnscope.events import Event, Signal, dead_letter
from fnscope.local_log import LocalLog
from fnscope.processors.writer import EventWriter, stored_counts
from fnscope.telemetry import pipeline_metrics
from fnscope.transport import decode

log = logging.getLogger("fnscope.processor")
LIVE_WITHIN_S = 60.0


@dataclass(frozen=True)
class Message:
    signal: Signal
    value: bytes
    where: str  # for a dead letter's reason: topic@offset, or the local log's record id
    events: list[Event] | None = None  # already decoded (the receivers in this process validated them)


class LogSource(Protocol):
    def read(self, timeout_s: float, max_messages: int) -> list[Message]:
        """Messages after the last read (waiting up to ``timeout_s`` for the first)."""
        ...

    def commit(self) -> None:
        """Everything read so far is stored."""
        ...

    def close(self) -> None: ...


class LogProcessor:
    def __init__(
        self,
        source: LogSource,
        writer: EventWriter,
        name: str,
        max_records: int = 2000,
        max_linger_s: float = 0.25,
        target_events: int = 20_000,
        on_write: Callable[[dict[Signal, int]], None] | None = None,
    ) -> None:
        self._source, self._writer, self._name = source, writer, name
        self._max_records = max_records
        self._max_linger_s = max_linger_s
        self._target_events = target_events
        self._on_write = on_write
        self._metrics = pipeline_metrics()
        self._stop = threading.Event()
        self._beat = time.monotonic()  # the loop's last turn
        self._store_failing = False

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self._beat = time.monotonic()
                self.poll_once()
        finally:
            self._source.close()

    def drain(self, timeout_s: float) -> None:
        """After ``run`` ended (a clean stop): store what the source still holds, for up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.poll_once(timeout_s=0.05):
            pass

    def live(self) -> bool:
        """The loop is turning: it read within the last minute (a read waits half a second at most)."""
        return not self._stop.is_set() and time.monotonic() - self._beat < LIVE_WITHIN_S

    def ready(self) -> bool:
        """The store takes this processor's writes (a failed insert is being retried otherwise)."""
        return not self._store_failing

    def stop(self) -> None:
        self._stop.set()

    def poll_once(self, timeout_s: float = 0.5) -> int:
        """Read one batch, write it until the write succeeds, then commit. Returns the events written."""
        messages = self._source.read(timeout_s, self._max_records)
        if not messages:
            return 0
        events = self._decode(messages)
        read = len(messages)
        deadline = time.monotonic() + self._max_linger_s
        while read < self._max_records and len(events) < self._target_events and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self._source.read(min(left, 0.05), self._max_records - read)
            read += len(more)
            events.extend(self._decode(more))
        self._write_until_done(events)
        self._source.commit()
        return len(events)

    def _decode(self, messages: list[Message]) -> list[Event]:
        events: list[Event] = []
        for message in messages:
            if message.events is not None:
                events.extend(message.events)
                continue
            try:
                events.extend(decode(message.signal, message.value))
            except ValidationError:
                events.extend(self._decode_each(message))
        return events

    def _decode_each(self, message: Message) -> list[Event]:
        """A message with a record that no longer validates (written by another release, say): each record on
        its own, so that one costs only itself."""
        try:
            records = orjson.loads(message.value)
        except orjson.JSONDecodeError as exc:
            return [dead_letter("log", f"undecodable message at {message.where}: {exc}", message.value)]
        events: list[Event] = []
        for n, record in enumerate(records if isinstance(records, list) else [records]):
            raw = orjson.dumps(record)
            try:
                events.extend(decode(message.signal, b"[" + raw + b"]"))
            except ValidationError as exc:
                reason = f"undecodable record {n} at {message.where}: {exc.errors()[0]['msg']}"
                events.append(dead_letter("log", reason, raw, tenant=_tenant(record)))
        return events

    def _write_until_done(self, events: list[Event]) -> None:
        """Write the batch; a record the store refuses becomes a dead letter (it would be refused for ever), while
        an outage (the store takes nothing) is retried with the position kept, until the store is back."""
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                (refused,) = self._writer.write_isolating([events])
            except Exception as exc:  # the store is down or refusing everything: pause, keep the position, retry
                if self._stop.is_set():
                    raise
                self._store_failing = True
                log.warning("insert failed, retrying in %.1fs: %s", delay, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._store_failing = False
            written = stored_counts(events, [refused])
            if refused:
                log.warning("%d records refused by the store were dead-lettered", len(refused))
            self._metrics.record_insert(self._name, len(events), time.perf_counter() - started)
            self._metrics.record_stored(written)
            if self._on_write is not None:
                self._on_write(written)
            return


class LocalLogSource:
    """The local durable log as a processor's source (``fnscope up``)."""

    def __init__(self, local_log: LocalLog) -> None:
        self._log = local_log
        self._read_upto = local_log.position()

    def read(self, timeout_s: float, max_messages: int) -> list[Message]:
        records = self._log.read(self._read_upto, max_messages)
        if not records and timeout_s > 0:
            self._log.wait(self._read_upto, timeout_s)
            records = self._log.read(self._read_upto, max_messages)
        if records:
            self._read_upto = records[-1].id
        return [Message(r.signal, r.value, f"local log record {r.id}", r.decoded) for r in records]

    def commit(self) -> None:
        self._log.commit(self._read_upto)

    def close(self) -> None:
        self._log.close()


def _tenant(record: object) -> str:
    tenant = record.get("tenant") if isinstance(record, dict) else None
    return tenant if isinstance(tenant, str) and tenant else "default"
