"""Distributed mode end to end against a real Kafka-protocol broker (Tansu, see STACK.md):
HTTP → collector → Kafka → processor → ClickHouse (chDB on disk) → query API, all as real processes.

chDB allows one process per data directory: processors that run side by side here each write a store of their own
(in production they share a ClickHouse server, which compose.yaml provides, where a re-read batch collapses).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from fnscope.store import connect
from fnscope.transport import all_topics
from tests.conftest import FNSCOPE, Process, free_port, tansu_binary, wait_http
from tests.fixtures import cloudtrail_set

GROUP = "fnscope-processors"


def group_lag(bootstrap: str) -> tuple[int, int]:
    """(committed messages, messages not yet committed) of the processors' group over every topic."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [
            TopicPartition(t, p) for t in all_topics("fnscope") for p in consumer.partitions_for_topic(t) or []
        ]
        ends = consumer.end_offsets(partitions)
        committed = {tp: meta.offset for tp, meta in admin.list_group_offsets({GROUP: partitions})[GROUP].items()}
        done = sum(max(committed.get(tp, 0), 0) for tp in partitions)
        return done, sum(ends[tp] for tp in partitions) - done
    finally:
        consumer.close()
        admin.close()


def wait_until_drained(bootstrap: str, proc: Process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.proc is not None and proc.proc.poll() is None, proc.output()
        if group_lag(bootstrap)[1] == 0:
            return
        time.sleep(0.3)
    raise TimeoutError(f"processor did not drain the topics: {group_lag(bootstrap)}\n{proc.output()}")


def start_collector(broker: str, tmp_path: Path) -> tuple[str, Process]:
    port = free_port()
    proc = Process([*FNSCOPE, "collector", "--kafka", broker, "--port", str(port)], tmp_path / "collector.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc.proc)
    return url, proc


def processor(broker: str, store: Path, tmp_path: Path, name: str, max_records: int = 2000) -> Process:
    return Process(
        [
            *FNSCOPE,
            "processor",
            "--kafka",
            broker,
            "--clickhouse",
            f"chdb://{store}",
            "--max-records",
            str(max_records),
        ],
        tmp_path / f"{name}.log",
    ).start()


def query_api(store: Path, tmp_path: Path) -> tuple[str, Process]:
    port = free_port()
    proc = Process(
        [*FNSCOPE, "api", "--clickhouse", f"chdb://{store}", "--port", str(port)], tmp_path / "api.log"
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc=proc.proc)
    return url, proc


def telemetry_batch(function: str, first: int, count: int) -> bytes:
    """A Telemetry API batch of `count` invocations, each a platform.report and one function log line."""
    base = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
    events = []
    for i in range(first, first + count):
        t = (base + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
        rid = f"req-{function}-{i:08d}"
        events.append({"time": t, "type": "function", "record": f"processing order {i} for {rid}"})
        events.append(
            {
                "time": t,
                "type": "platform.report",
                "record": {
                    "requestId": rid,
                    "status": "success",
                    "metrics": {"durationMs": 12.5, "billedDurationMs": 13, "memorySizeMB": 128, "maxMemoryUsedMB": 60},
                },
            }
        )
    return json.dumps(events).encode()


def test_http_to_kafka_to_clickhouse_to_query(broker: str, tmp_path: Path) -> None:
    collector_url, collector = start_collector(broker, tmp_path)
    acked: set[str] = set()
    for name in cloudtrail_set.TECHNIQUES:
        body = cloudtrail_set.technique_file(name)
        r = httpx.post(f"{collector_url}/ingest/cloudtrail", content=body, timeout=30)
        assert r.status_code == 200, r.text
        acked.update(rec["eventID"] for rec in json.loads(body))
    r = httpx.post(f"{collector_url}/ingest/telemetry?function=orders", content=telemetry_batch("orders", 0, 50))
    assert r.status_code == 200 and r.json()["accepted"] == 100
    collector.stop()

    store = tmp_path / "store"
    proc = processor(broker, store, tmp_path, "processor")
    wait_until_drained(broker, proc)
    assert proc.stop() == 0

    url, api = query_api(store, tmp_path)
    try:
        rows = httpx.get(f"{url}/api/audit", params={"since": "20000d", "limit": 10000}).json()["results"]
        assert sorted(r["event_id"] for r in rows) == sorted(acked)
        logs = httpx.get(
            f"{url}/api/search", params={"q": "processing", "function": "orders", "since": "20000d", "limit": 1000}
        ).json()["results"]
        assert len(logs) == 50
        stats = httpx.get(f"{url}/api/stats", params={"since": "20000d", "function": "orders"}).json()["functions"]
        assert stats[0]["invocations"] == 50
    finally:
        api.stop()


def test_processor_killed_mid_batch_loses_and_doubles_nothing(broker: str, tmp_path: Path) -> None:
    collector_url, collector = start_collector(broker, tmp_path)
    per_request, requests = 500, 80
    with httpx.Client(timeout=30) as client:
        for n in range(requests):
            body = telemetry_batch(f"fn-{n % 4}", n * per_request, per_request)
            assert client.post(f"{collector_url}/ingest/telemetry?function=fn-{n % 4}", content=body).status_code == 200
    collector.stop()
    total_reports = per_request * requests

    store = tmp_path / "store"
    first = processor(broker, store, tmp_path, "first", max_records=4)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done, left = group_lag(broker)
        if done > 0 and left > 0:
            break
        assert first.proc is not None and first.proc.poll() is None, first.output()
        time.sleep(0.05)
    first.kill9()
    done, left = group_lag(broker)
    assert left > 0, "the kill must land before the topics are drained"

    second = processor(broker, store, tmp_path, "second")
    wait_until_drained(broker, second)
    assert second.stop() == 0

    url, api = query_api(store, tmp_path)
    try:
        stats = httpx.get(f"{url}/api/stats", params={"since": "20000d"}).json()["functions"]
        assert sum(row["invocations"] for row in stats) == total_reports
        assert {row["function"] for row in stats} == {"fn-0", "fn-1", "fn-2", "fn-3"}
    finally:
        api.stop()


def test_a_collector_started_before_its_broker_serves_health_and_connects_when_it_comes(tmp_path: Path) -> None:
    """An orchestrator starts roles in any order: without Kafka the collector is alive, not ready and answers 503;
    once the broker answers, it makes the topics and takes events."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    collector_url, collector = start_collector(address, tmp_path)
    try:
        assert httpx.get(f"{collector_url}/healthz").status_code == 200
        assert httpx.get(f"{collector_url}/readyz").status_code == 503
        early = httpx.post(f"{collector_url}/ingest/telemetry?function=early", content=telemetry_batch("early", 0, 1))
        assert early.status_code == 503 and early.headers["Retry-After"]
        url = f"tcp://{address}"
        tansu = Process(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url], tmp_path / "tansu.log"
        ).start()
        try:
            deadline = time.monotonic() + 30
            status = 0
            while time.monotonic() < deadline and status != 200:
                time.sleep(0.5)
                status = httpx.post(
                    f"{collector_url}/ingest/telemetry?function=late", content=telemetry_batch("late", 0, 1)
                ).status_code
            assert status == 200
            assert httpx.get(f"{collector_url}/readyz").status_code == 200
            # durable in Kafka; when processors store it, a collector can't tell, and says so at once
            asked = httpx.post(f"{collector_url}/ingest/telemetry?function=late&wait=stored", content=b"[]")
            assert asked.status_code == 200 and asked.json()["stored"] is False
        finally:
            tansu.stop()
    finally:
        collector.stop()


def assignment(proc: Process) -> set[tuple[str, int]]:
    """The partitions a processor holds, from the last assignment it logged (processors log each rebalance)."""
    lines = [line for line in proc.output().splitlines() if "partitions assigned: " in line]
    if not lines:
        return set()
    held = lines[-1].split("partitions assigned: ", 1)[1]
    return {
        (topic, int(partition))
        for word in held.split()
        if word != "-"
        for topic, partitions in [word.rsplit(":", 1)]
        for partition in partitions.split(",")
    }


def stored_request_ids(store: Path) -> list[str]:
    client = connect(f"chdb://{store}")
    try:
        return [row[0] for row in client.query("SELECT request_id FROM invocations FINAL").result_rows]
    finally:
        client.close()


def test_processors_side_by_side_share_the_partitions_and_hand_over_when_one_dies(broker: str, tmp_path: Path) -> None:
    """Two processors in one group at once: the broker gives each partition to exactly one of them; one killed
    mid-batch hands its partitions to the other; together they store every event, each store holding none twice."""
    collector_url, collector = start_collector(broker, tmp_path)
    per_request, requests, functions = 200, 96, 8
    with httpx.Client(timeout=30) as client:
        for n in range(requests):
            name = f"fn-{n % functions}"
            body = telemetry_batch(name, n * per_request, per_request)
            assert client.post(f"{collector_url}/ingest/telemetry?function={name}", content=body).status_code == 200
    collector.stop()

    first = processor(broker, tmp_path / "first", tmp_path, "first", max_records=1)
    second = processor(broker, tmp_path / "second", tmp_path, "second", max_records=1)
    try:
        every = {(t, p) for t in all_topics("fnscope") for p in range(6)}
        deadline = time.monotonic() + 120
        while not (assignment(first) | assignment(second) == every and assignment(first) and assignment(second)):
            assert time.monotonic() < deadline, f"not shared: {assignment(first)} / {assignment(second)}"
            time.sleep(0.2)
        assert not assignment(first) & assignment(second), "a partition held by both processors"

        assert group_lag(broker)[1] > 0, "both must hold partitions before the topics drain"
        first.kill9()
        deadline = time.monotonic() + 120
        while assignment(second) != every:
            assert time.monotonic() < deadline, f"the dead member's partitions were not handed over: {second.output()}"
            time.sleep(0.2)
        wait_until_drained(broker, second)
        assert second.stop() == 0
    finally:
        first.stop()
        second.stop()

    sent = {
        f"req-fn-{n % functions}-{i:08d}"
        for n in range(requests)
        for i in range(n * per_request, (n + 1) * per_request)
    }
    by_first, by_second = stored_request_ids(tmp_path / "first"), stored_request_ids(tmp_path / "second")
    assert len(by_first) == len(set(by_first)) and len(by_second) == len(set(by_second))
    assert set(by_first) | set(by_second) == sent
    # only what the killed one stored but had not committed is read again (one message: max_records=1)
    assert len(set(by_first) & set(by_second)) <= per_request
