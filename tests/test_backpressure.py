"""Backpressure, each with the real part failing: Kafka gone (503 + Retry-After, bounded memory), ClickHouse
refusing inserts (the processor pauses without committing and catches up), the embedded store saturated (429)."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
from kafka import KafkaAdminClient, TopicPartition

from faults.load import cloudtrail_file
from faults.processes import Managed, free_port, tansu_binary, wait_port
from fnscope.kafka_admin import ensure_topics
from fnscope.transport import all_topics
from tests.conftest import FNSCOPE, Process, all_stored, wait_http
from tests.test_distributed import start_collector


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def wait_for(predicate, timeout: float = 30, every: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"not true within {timeout}s: {predicate}")


def test_kafka_unreachable_is_503_with_retry_after_and_memory_stays_bounded(tmp_path: Path) -> None:
    port = free_port()
    bootstrap, url_ = f"127.0.0.1:{port}", f"tcp://127.0.0.1:{port}"
    broker = Managed(
        "broker", [tansu_binary(), "broker", "--listener-url", url_, "--advertised-listener-url", url_], tmp_path / "b"
    )
    broker.start()
    wait_port(port)
    url, collector = start_collector(bootstrap, tmp_path)
    try:
        body, _ = cloudtrail_file(1000, 0, 0)
        assert httpx.post(f"{url}/ingest/cloudtrail", content=body, timeout=30).status_code == 200
        assert httpx.get(f"{url}/readyz").json()["checks"] == {"kafka": True}

        broker.kill9()
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 503)
        assert collector.proc is not None
        sent = 0
        with httpx.Client(timeout=30) as client:

            def post(n: int) -> httpx.Response:
                return client.post(f"{url}/ingest/cloudtrail", content=cloudtrail_file(1000, 1, n)[0])

            def stream(requests: range) -> int:
                """Send, check every answer, return the collector's largest RSS meanwhile."""
                nonlocal sent
                peak = 0
                with ThreadPoolExecutor(4) as pool:
                    for r in pool.map(post, requests):
                        sent += len(r.request.content)
                        assert r.status_code == 503, r.text
                        assert int(r.headers["Retry-After"]) > 0
                        peak = max(peak, rss_bytes(collector.proc.pid))
                return peak

            warm = stream(range(50))
            sent_warm = sent
            peak = stream(range(50, 250))
        assert sent - sent_warm > 100 * 1024 * 1024
        # Bounded: past the warm-up, 100+ MB more of refused bodies leave the collector's memory where it was.
        assert peak - warm < 16 * 1024 * 1024, (warm, peak, sent)

        broker.start()  # a memory-only broker comes back empty: re-create the topics a real one would still have
        wait_port(port)
        ensure_topics(bootstrap, "fnscope", 6)
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        wait_for(lambda: httpx.post(f"{url}/ingest/cloudtrail", content=body, timeout=30).status_code == 200, 60, 1)
    finally:
        collector.stop()
        broker.stop()


def test_embedded_store_saturated_is_429_and_every_retried_event_lands_once(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [*FNSCOPE, "up", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        tmp_path / "up.log",
        {"FNSCOPE_LIMITS__MAX_LOG_BYTES": "1"},  # the log takes a request only when it holds nothing
    ).start()
    wait_http(f"{url}/healthz", proc=proc.proc)
    refusals: list[httpx.Response] = []
    acked: set[str] = set()
    lock = threading.Lock()

    def send(sender: int) -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(6):
                body, ids = cloudtrail_file(300, sender, n)
                while (r := client.post(f"{url}/ingest/cloudtrail", content=body)).status_code == 429:
                    with lock:
                        refusals.append(r)
                    time.sleep(0.05)
                assert r.status_code == 200, r.text
                with lock:
                    acked.update(ids)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(8)))
        assert refusals, "8 concurrent senders against a one-request backlog must be told to wait"
        assert all(int(r.headers["Retry-After"]) > 0 and "busy" in r.json()["detail"] for r in refusals)
        all_stored(url)
        rows = httpx.get(f"{url}/api/audit", params={"since": "1d", "limit": 100_000}).json()["results"]
        stored = [row["event_id"] for row in rows]
        assert len(stored) == len(set(stored)) and set(stored) == acked and len(acked) == 8 * 6 * 300
    finally:
        proc.stop()


def _processor_child(bootstrap: str, dsn: str, conn: Connection) -> None:
    """A real Kafka processor on a real chDB store, in its own process; the parent asks it to make the table
    disappear (DETACH: ClickHouse itself then refuses every insert) and come back (ATTACH)."""
    from fnscope.processors.kafka_processor import kafka_processor
    from fnscope.processors.store import open_store
    from fnscope.processors.writer import EventWriter
    from fnscope.store import connect

    failures = 0

    class CountFailures(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            nonlocal failures
            failures += "insert failed" in record.getMessage()

    logging.getLogger("fnscope.processor").addHandler(CountFailures())
    processor = kafka_processor(bootstrap, EventWriter(open_store(dsn)), session_timeout_ms=6000)
    threading.Thread(target=processor.run, daemon=True).start()
    control = connect(dsn)
    while True:
        command = conn.recv()
        if command == "detach":
            control.command("DETACH TABLE audit_events")
        elif command == "attach":
            control.command("ATTACH TABLE audit_events")
        elif command == "status":
            try:
                count = control.query("SELECT count() FROM audit_events FINAL").result_rows[0][0]
            except Exception:  # detached
                count = -1
            conn.send((count, failures))
            continue
        elif command == "stop":
            processor.stop()
            return
        conn.send("ok")


def committed(bootstrap: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(t, p) for t in all_topics("fnscope") for p in range(6)]
        offsets = admin.list_group_offsets({"fnscope-processors": partitions})["fnscope-processors"]
        return sum(max(meta.offset, 0) for meta in offsets.values())
    finally:
        admin.close()


def test_clickhouse_refusing_inserts_pauses_the_processor_without_committing(broker: str, tmp_path: Path) -> None:
    url, collector = start_collector(broker, tmp_path)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    worker = multiprocessing.get_context("spawn").Process(
        target=_processor_child, args=(broker, f"chdb://{tmp_path / 'store'}", child), daemon=True
    )
    worker.start()

    def ask(command: str) -> object:
        parent.send(command)
        assert parent.poll(30), f"the processor process did not answer {command!r}"
        return parent.recv()

    def status() -> tuple[int, int]:
        return ask("status")  # type: ignore[return-value]

    def post(n: int) -> int:
        body, _ = cloudtrail_file(200, 0, n)
        assert httpx.post(f"{url}/ingest/cloudtrail", content=body, timeout=30).status_code == 200
        return 200

    try:
        post(0)
        wait_for(lambda: status()[0] == 200, 60)
        wait_for(lambda: committed(broker) > 0, 30)  # the offsets are committed just after the insert returned
        before = committed(broker)
        assert ask("detach") == "ok"
        total = 200 + sum(post(n) for n in range(1, 6))  # acknowledged by Kafka while ClickHouse refuses
        wait_for(lambda: status()[1] >= 2, 30)  # the processor tried, failed and is retrying the same batch
        assert committed(broker) == before, "nothing may be committed while inserts fail"

        assert ask("attach") == "ok"
        wait_for(lambda: status()[0] == total, 60)
        wait_for(lambda: committed(broker) > before, 30)
    finally:
        parent.send("stop")
        worker.join(20)
        collector.stop()
