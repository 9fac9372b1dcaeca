"""Distributed mode's source: a Kafka consumer-group member (``fnscope processor``), read by the processor loop
(``fnscope.processors.log_processor``). Offsets are committed only after the insert returned; after a rebalance
another member re-reads what this one had not committed."""

from __future__ import annotations

import logging

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError

from fnscope.processors.log_processor import LogProcessor, Message
from fnscope.processors.writer import EventWriter
from fnscope.telemetry import pipeline_metrics
from fnscope.transport import all_topics

log = logging.getLogger("fnscope.processor")


class KafkaSource:
    def __init__(
        self,
        bootstrap: str,
        prefix: str = "fnscope",
        group_id: str = "fnscope-processors",
        session_timeout_ms: int = 6000,
    ) -> None:
        self._topics = all_topics(prefix)
        self._metrics = pipeline_metrics()
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

    def read(self, timeout_s: float, max_messages: int) -> list[Message]:
        batch = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_messages)
        self._record_lag()
        return [
            Message(self._topics[partition.topic], record.value, f"{partition.topic}@{record.offset}")
            for partition, records in batch.items()
            for record in records
        ]

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member holds now."""
        return set(self._consumer.assignment())

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced while we wrote: another member re-reads the batch; duplicates stay invisible.
            log.warning("offset commit failed, batch will be re-read: %s", exc)

    def close(self) -> None:
        self._consumer.close(autocommit=False)

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


def kafka_processor(
    bootstrap: str,
    writer: EventWriter,
    prefix: str = "fnscope",
    group_id: str = "fnscope-processors",
    max_records: int = 2000,
    session_timeout_ms: int = 6000,
) -> LogProcessor:
    """A processor reading Kafka: the group member ``fnscope processor`` runs."""
    source = KafkaSource(bootstrap, prefix, group_id, session_timeout_ms)
    return LogProcessor(source, writer, "processor", max_records=max_records)


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
