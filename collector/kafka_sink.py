"""Distributed mode's sink: events to Kafka, acknowledged only when every message is acked (acks=all)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import Future

from kafka import KafkaProducer
from kafka.errors import KafkaError

from fnscope.events import Event
from fnscope.kafka_admin import ensure_topics
from fnscope.sink import StoreUnavailable
from fnscope.transport import encode_batches, topic

log = logging.getLogger("fnscope.collector")


class KafkaUnavailable(StoreUnavailable):
    """Kafka did not take the events: the receiver answers 503 with Retry-After."""


class BrokerProbe:
    """Can a bootstrap server be reached at all? A TCP connect, remembered for a second.

    kafka-python queues records for an unreachable broker until delivery_timeout_ms; checking first turns an
    outage into immediate 503s (bounded memory, the sender retries) instead of requests hanging for 20 s.
    """

    def __init__(self, bootstrap: str, ttl_s: float = 1.0, timeout_s: float = 0.5) -> None:
        self._servers = [_host_port(s) for s in bootstrap.split(",") if s.strip()]
        self._ttl_s, self._timeout_s = ttl_s, timeout_s
        self._checked_at = -1e9
        self._reachable = False
        self._lock = threading.Lock()

    def reachable(self) -> bool:
        """Checks again (blocking, at most timeout_s per server) once the remembered answer is older than ttl_s."""
        with self._lock:
            if time.monotonic() - self._checked_at > self._ttl_s:
                self._refresh_locked()
            return self._reachable

    def last_known(self) -> bool:
        """The remembered answer without waiting (for the event loop); a stale one is refreshed in the background."""
        if time.monotonic() - self._checked_at <= self._ttl_s:
            return self._reachable
        if self._checked_at < 0:  # never checked: nothing to remember yet
            return self.reachable()
        if self._lock.acquire(blocking=False):  # else a check is already running
            threading.Thread(target=self._refresh_and_release, name="kafka-probe", daemon=True).start()
        return self._reachable

    def _refresh_and_release(self) -> None:
        try:
            self._refresh_locked()
        finally:
            self._lock.release()

    def _refresh_locked(self) -> None:
        self._reachable = any(self._connects(server) for server in self._servers)
        self._checked_at = time.monotonic()

    def _connects(self, server: tuple[str, int]) -> bool:
        try:
            with socket.create_connection(server, timeout=self._timeout_s):
                return True
        except OSError:
            return False


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]") or "localhost", int(port or 9092)


class KafkaSink:
    """Events to Kafka with acks=all. It connects when Kafka answers, not before: a collector started ahead of its
    broker (an orchestrator starts roles in any order) serves /healthz, answers 503 and reports not ready until the
    broker is up, then creates the topics it needs and goes on."""

    readiness_name = "kafka"

    def __init__(
        self, bootstrap: str, prefix: str = "fnscope", max_buffer_bytes: int = 64 * 1024 * 1024, partitions: int = 6
    ) -> None:
        self.prefix = prefix
        self._bootstrap, self._partitions = bootstrap, partitions
        self._probe = BrokerProbe(bootstrap)
        # kafka-python has no buffer_memory bound: cap the bytes awaiting acks ourselves, so an unreachable
        # Kafka means fast 503s instead of a growing heap.
        self._max_in_flight = max_buffer_bytes
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._connect_lock = threading.Lock()
        if self._probe.reachable():
            self._connect()

    def _connect(self) -> KafkaProducer | None:
        """The producer, made (topics first) once the broker answers; None while it does not."""
        with self._connect_lock:
            if self._producer is None:
                try:
                    ensure_topics(self._bootstrap, self.prefix, self._partitions)
                    self._producer = KafkaProducer(
                        bootstrap_servers=self._bootstrap,
                        client_id="fnscope-collector",
                        acks="all",
                        compression_type="lz4",
                        linger_ms=5,
                        batch_size=1024 * 1024,
                        max_request_size=4 * 1024 * 1024,
                        max_block_ms=2000,
                        retries=5,
                        request_timeout_ms=10_000,
                        delivery_timeout_ms=20_000,
                        enable_idempotence=False,
                    )
                except KafkaError as exc:
                    log.warning("Kafka at %s is not ready yet: %s", self._bootstrap, exc)
            return self._producer

    def submit(self, events: list[Event]) -> Future[None]:
        """Blocks at most briefly (the probe, kafka-python's metadata wait): call it off the event loop."""
        done: Future[None] = Future()
        messages = list(encode_batches(events))
        if not messages:
            done.set_result(None)
            return done
        producer = self._connect() if self._probe.reachable() else None
        if producer is None:
            raise KafkaUnavailable("Kafka is unreachable")
        size = sum(len(value) for _, _, value in messages)
        with self._in_flight_lock:
            if self._in_flight + size > self._max_in_flight:
                raise KafkaUnavailable(f"{self._in_flight} bytes are still waiting for Kafka's acknowledgement")
            self._in_flight += size
        remaining, failed = len(messages), False
        lock = threading.Lock()

        def release() -> None:
            with self._in_flight_lock:
                self._in_flight -= size

        # The bytes are released once every message is acknowledged or one failed, whether or not the request
        # still waits (a request that timed out cancelled its future).
        def on_success(_metadata: object) -> None:
            nonlocal remaining
            with lock:
                remaining -= 1
                last = remaining == 0 and not failed
                if last and not done.done():
                    done.set_result(None)
            if last:
                release()

        def on_error(exc: BaseException) -> None:
            nonlocal failed
            with lock:
                first, failed = not failed, True
                if first and not done.done():
                    done.set_exception(KafkaUnavailable(f"Kafka did not acknowledge: {exc}"))
            if first:
                release()

        try:
            for signal, key, value in messages:
                sent = producer.send(topic(self.prefix, signal), key=key.encode(), value=value)
                sent.add_callback(on_success)
                sent.add_errback(on_error)
        except KafkaError as exc:
            on_error(exc)
        return done

    def stored(self, timeout_s: float) -> bool:
        return False  # the processors store it, at their pace: a collector can't tell when

    def ready(self) -> bool:
        """Never blocks (asked on the event loop); submit() checks again, blocking, before sending. Reachable but
        not yet connected counts as ready: the next request connects."""
        return self._probe.last_known()

    def in_flight_bytes(self) -> int:
        return self._in_flight

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
