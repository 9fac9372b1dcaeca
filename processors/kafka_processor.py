"""Distributed mode's processor: a consumer-group member that writes Kafka batches into ClickHouse.

Offsets are committed only after the insert returned, so a processor killed mid-batch re-reads that batch
on restart (or another member does after the rebalance); deterministic event ids plus ReplacingMergeTree make
the second copy invisible. While ClickHouse is down the processor retries the same batch with backoff and
commits nothing.

A batch is what one poll returned, topped up by further short polls while messages keep arriving (up to
``max_records`` messages, ``target_events`` events or ``max_linger_s``): each ClickHouse insert has a fixed
cost of tens of milliseconds of CPU per table, so a processor keeping pace with its collectors would
otherwise spend most of its time on inserts of a few hundred events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from fnscope.events import Event, Signal, dead_letter
from fnscope.processors.writer import EventWriter, stored_counts
from fnscope.telemetry import pipeline_metrics
from fnscope.transport import all_topics, decode

log = logging.getLogger("fnscope.processor")
LIVE_WITHIN_S = 60.0


class KafkaProcessor:
    def __init__(
        self,
        bootstrap: str,
        writer: EventWriter,
        prefix: str = "fnscope",
        group_id: str = "fnscope-processors",
        max_records: int = 2000,
        session_timeout_ms: int = 6000,
        on_write: Callable[[dict[Signal, int]], None] | None = None,
        max_linger_s: float = 0.25,
        target_events: int = 20_000,
    ) -> None:
        self._writer = writer
        self._topics = all_topics(prefix)
        self._max_records = max_records
        self._max_linger_s = max_linger_s
        self._target_events = target_events
        self._on_write = on_write
        self._metrics = pipeline_metrics()
        self._stop = threading.Event()
        self._beat = time.monotonic()  # the loop's last turn
        self._store_failing = False
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id="fnscope-processor",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(1000, session_timeout_ms // 3),
            max_poll_interval_ms=600_000,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self._consumer.subscribe(list(self._topics), listener=SayAssignment())

    def run(self) -> None:
        while not self._stop.is_set():
            self._beat = time.monotonic()
            self.poll_once()
        self._consumer.close(autocommit=False)

    def live(self) -> bool:
        """The loop is turning: it polled within the last minute (a poll waits half a second at most)."""
        return not self._stop.is_set() and time.monotonic() - self._beat < LIVE_WITHIN_S

    def ready(self) -> bool:
        """The store takes this processor's writes (a failed insert is being retried otherwise)."""
        return not self._store_failing

    def stop(self) -> None:
        self._stop.set()

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Read one batch, write it until the write succeeds, then commit. Returns the events written."""
        batch = self._consumer.poll(timeout_ms=timeout_ms, max_records=self._max_records)
        self._record_lag()
        if not batch:
            return 0
        events: list[Event] = []
        messages = self._decode_into(events, batch)
        deadline = time.monotonic() + self._max_linger_s
        while messages < self._max_records and len(events) < self._target_events and time.monotonic() < deadline:
            more = self._consumer.poll(timeout_ms=20, max_records=self._max_records - messages)
            if not more:
                break
            messages += self._decode_into(events, more)
        self._write_until_done(events)
        try:
            self._consumer.commit()
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced while we wrote: another member re-reads the batch; duplicates stay invisible.
            log.warning("offset commit failed, batch will be re-read: %s", exc)
        return len(events)

    def _decode_into(self, events: list[Event], batch: dict[TopicPartition, list[ConsumerRecord]]) -> int:
        messages = 0
        for partition, records in batch.items():
            signal = self._topics[partition.topic]
            for record in records:
                events.extend(self._decode(signal, record.value, partition.topic, record.offset))
            messages += len(records)
        return messages

    def _record_lag(self) -> None:
        """Messages in Kafka this member has not read yet, per assigned partition (from the last fetch)."""
        lag: dict[tuple[tuple[str, str], ...], float] = {}
        try:
            for tp in self._consumer.assignment():
                highwater = self._consumer.highwater(tp)
                if highwater is None:
                    continue
                position = self._consumer.position(tp, timeout_ms=0) or 0
                lag[(("partition", str(tp.partition)), ("topic", tp.topic))] = max(0, highwater - position)
        except (KafkaError, AssertionError, TypeError) as exc:  # positions unknown mid-rebalance: keep the last values
            log.debug("lag not measured: %s", exc)
            return
        self._metrics.kafka_lag.replace(lag)

    def _decode(self, signal: Signal, value: bytes, topic: str, offset: int) -> list[Event]:
        try:
            return decode(signal, value)
        except ValidationError as exc:
            reason = f"undecodable message at {topic}@{offset}: {exc.errors()[0]['msg']}"
            return [dead_letter("kafka", reason, value)]

    def _write_until_done(self, events: list[Event]) -> None:
        """Write the batch; a record the store refuses becomes a dead letter (it would be refused for ever), while
        an outage (the store takes nothing) is retried with the offsets kept, until the store is back."""
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                (refused,) = self._writer.write_isolating([events])
            except Exception as exc:  # ClickHouse down or refusing everything: pause, keep the offsets, try again
                if self._stop.is_set():
                    raise
                self._store_failing = True
                log.warning("insert failed, retrying in %.1fs: %s", delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._store_failing = False
            written = stored_counts(events, refused)
            if refused:
                log.warning("%d records refused by the store were dead-lettered", len(refused))
            self._metrics.record_insert("processor", len(events), time.perf_counter() - started)
            self._metrics.record_stored(written)
            if self._on_write is not None:
                self._on_write(written)
            return


class SayAssignment(ConsumerRebalanceListener):
    """Logs which partitions this member holds after each rebalance: which processor handles what, for operators."""

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions revoked: %s", partition_names(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", partition_names(assigned))


def partition_names(partitions: set[TopicPartition]) -> str:
    """``topic:0,3 other:1``, sorted; ``-`` for none."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}:{','.join(map(str, sorted(ps)))}" for t, ps in sorted(by_topic.items())) or "-"
